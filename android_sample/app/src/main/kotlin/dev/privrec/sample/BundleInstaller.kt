package dev.privrec.sample

import android.content.Context
import dev.privrec.core.Bundle
import dev.privrec.core.BundleException
import dev.privrec.core.BundleFiles
import dev.privrec.core.BundlePublicKey
import dev.privrec.core.BundleSignature
import dev.privrec.core.Manifest
import dev.privrec.core.Sha256
import java.io.File
import java.io.FileNotFoundException
import java.io.IOException

/** The app pins no usable public key (none set at build time, or not a key): every bundle is refused. */
class PinnedKeyException(message: String) : RuntimeException(message)

/**
 * The publisher's Ed25519 public key, pinned at build time as `BuildConfig.PRIVREC_PUBLIC_KEY` from the
 * Gradle property `privrec.publicKey` or `privrec.publicKeyFile` (app/build.gradle.kts, README). It ships
 * inside the app, never with the bundle it checks.
 */
object PinnedKey {
    fun get(): BundlePublicKey {
        val text = BuildConfig.PRIVREC_PUBLIC_KEY
        if (text.isBlank()) {
            throw PinnedKeyException(
                "this build pins no public key, so no bundle can be trusted. Build with " +
                    "-Pprivrec.publicKeyFile=keys/privrec_signing_key.pub (from `privrec keys generate`; README)."
            )
        }
        return try {
            BundlePublicKey.fromBase64(text)
        } catch (e: IllegalArgumentException) {
            throw PinnedKeyException("the pinned public key (privrec.publicKey) is not usable: ${e.message}")
        }
    }
}

/**
 * Installs the bundle shipped in `assets/bundle/` into app-private storage and loads it with the core's
 * [Bundle.load] and the pinned key.
 *
 * `manifest.sig` is checked against the pinned key as soon as it and `manifest.json` are copied, before the
 * manifest is parsed or any file it lists is copied: an unsigned bundle, one signed by another key, or a
 * manifest changed after signing is refused with a [BundleException] naming `manifest.sig`.
 * The files are copied into a staging folder renamed into place only when complete, named after the hashes
 * of `manifest.json` and `manifest.sig`, so an app update that ships another or a re-signed bundle installs
 * it afresh, and a half-finished copy (the app killed mid-way) is never used. [Bundle.load] checks the
 * signature, every listed file's size and sha256 again on every start; an installed copy it refuses is
 * replaced by a fresh copy from the APK, itself checked the same way.
 */
object BundleInstaller {
    private const val ASSET_DIR = "bundle"
    private const val MAX_SIGNATURE_BYTES = 4096

    /**
     * Throws [PinnedKeyException] when the app pins no usable key, [BundleException] when
     * the bundle is refused, and [FileNotFoundException] when the app ships no bundle.
     */
    fun install(context: Context): Bundle {
        val key = PinnedKey.get()
        Ed25519Support.install()
        val manifestBytes = readAsset(context, Manifest.FILE, BundleFiles.MAX_MANIFEST_BYTES)
        // Missing in an unsigned bundle: then it is refused below, naming manifest.sig, not "no bundle".
        val signatureBytes = try {
            readAsset(context, BundleSignature.FILE, MAX_SIGNATURE_BYTES.toLong())
        } catch (e: FileNotFoundException) {
            null
        }
        val stamp = Sha256.hex(manifestBytes).substring(0, 16) + "-" + (signatureBytes?.let { Sha256.hex(it).substring(0, 16) } ?: "unsigned")
        val target = File(context.noBackupFilesDir, "bundles/$stamp")
        if (target.isDirectory) {
            try {
                return Bundle.load(target, key)
            } catch (e: BundleException) {
                // The installed copy was altered or damaged on the device: copy it again from the APK,
                // whose manifest.sig is checked again below.
                target.deleteRecursively()
            }
        }
        copyFromAssets(context, target, manifestBytes, signatureBytes, key)
        target.parentFile?.listFiles()?.filter { it != target }?.forEach { it.deleteRecursively() } // older bundles
        return Bundle.load(target, key)
    }

    /**
     * Copies `manifest.json` and `manifest.sig` into a staging folder beside [target], checks the signature,
     * then copies the files the verified manifest lists and renames the folder to [target].
     */
    private fun copyFromAssets(context: Context, target: File, manifestBytes: ByteArray, signatureBytes: ByteArray?, key: BundlePublicKey) {
        val staging = File(target.parentFile, "${target.name}.partial")
        staging.deleteRecursively()
        check(staging.mkdirs()) { "could not create $staging" }
        try {
            File(staging, Manifest.FILE).writeBytes(manifestBytes)
            signatureBytes?.let { File(staging, BundleSignature.FILE).writeBytes(it) }
            // Refuses an unsigned or mis-signed bundle before its manifest is parsed or a listed file copied.
            BundleSignature.verify(staging, manifestBytes, key)
            // Only a verified manifest decides which files to copy; its parser refuses unsafe paths.
            val manifest = Manifest.parse(BundleFiles.utf8(manifestBytes, Manifest.FILE))
            for (path in manifest.files.keys) {
                val out = File(staging, path)
                out.parentFile?.mkdirs()
                try {
                    context.assets.open("$ASSET_DIR/$path").use { input -> out.outputStream().use { input.copyTo(it) } }
                } catch (e: FileNotFoundException) {
                    throw BundleException(path, "is listed in manifest.json \"files\" but missing from assets/$ASSET_DIR/")
                }
            }
            if (!staging.renameTo(target)) throw IOException("could not move $staging to $target")
        } finally {
            staging.deleteRecursively() // already gone after a successful rename
        }
    }

    private fun readAsset(context: Context, name: String, maxBytes: Long): ByteArray =
        context.assets.open("$ASSET_DIR/$name").use { input ->
            val bytes = input.readBytes()
            if (bytes.size > maxBytes) {
                throw BundleException(name, "is larger than the $maxBytes bytes it may hold")
            }
            bytes
        }
}
