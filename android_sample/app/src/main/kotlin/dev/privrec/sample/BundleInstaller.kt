package dev.privrec.sample

import android.content.Context
import dev.privrec.core.Bundle
import dev.privrec.core.JsonFields
import dev.privrec.core.Manifest
import java.io.File

/**
 * Copies the bundle shipped in `assets/bundle/` to app-private storage and loads it with the core's
 * [Bundle.load], which checks every listed file's size and sha256 before anything is used.
 *
 * The copy is keyed by `model_version`, so an app update with a new bundle replaces the old one, and a
 * half-finished copy (the app killed mid-way) is never trusted: the hashes are checked on every start.
 */
object BundleInstaller {
    private const val ASSET_DIR = "bundle"

    fun install(context: Context): Bundle {
        val manifestText = context.assets.open("$ASSET_DIR/${Manifest.FILE}").use { it.readBytes().toString(Charsets.UTF_8) }
        // Parsed only to learn which files to copy; Bundle.load parses and checks it again from disk.
        val manifest = Manifest.fromJson(JsonFields.parse(manifestText, Manifest.FILE))
        val target = File(context.noBackupFilesDir, "bundles/${manifest.modelVersion.replace(':', '_')}")
        val marker = File(target, ".installed")
        if (!marker.isFile) {
            target.deleteRecursively()
            for (path in manifest.files.keys + Manifest.FILE) {
                val out = File(target, path)
                out.parentFile?.mkdirs()
                context.assets.open("$ASSET_DIR/$path").use { input -> out.outputStream().use { input.copyTo(it) } }
            }
            marker.writeText(manifest.modelVersion)
            target.parentFile?.listFiles()?.filter { it != target }?.forEach { it.deleteRecursively() }
        }
        return Bundle.load(target)
    }
}
