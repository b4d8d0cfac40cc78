package dev.privrec.core

import java.io.File
import java.io.FileInputStream
import java.io.InputStream
import java.security.MessageDigest

/** SHA-256 of files and bytes as lowercase hex (java.security, available on every JVM and Android). */
object Sha256 {
    fun hex(bytes: ByteArray): String = toHex(MessageDigest.getInstance("SHA-256").digest(bytes))

    /** Streams [file] through SHA-256 in 64 KiB chunks (an app's model files can be large). */
    fun hex(file: File): String = FileInputStream(file).use { hex(it) }

    /** Streams [input] (to its end) through SHA-256 in 64 KiB chunks. */
    fun hex(input: InputStream): String {
        val md = MessageDigest.getInstance("SHA-256")
        val buffer = ByteArray(1 shl 16)
        while (true) {
            val n = input.read(buffer)
            if (n < 0) break
            md.update(buffer, 0, n)
        }
        return toHex(md.digest())
    }

    private fun toHex(digest: ByteArray): String {
        val digits = "0123456789abcdef"
        val sb = StringBuilder(digest.size * 2)
        for (b in digest) {
            val v = b.toInt() and 0xff
            sb.append(digits[v ushr 4]).append(digits[v and 0x0f])
        }
        return sb.toString()
    }
}

/**
 * Checks every file the manifest lists: a regular file inside the bundle reached without a symbolic link
 * ([BundleFiles.resolve]), same size, same sha256 (docs/BUNDLE.md).
 */
object BundleVerifier {
    /**
     * Throws a [BundleException] naming the first file that is missing or differs; checks them in the
     * manifest's order. Size is compared before hashing, so a truncated file fails fast.
     */
    fun verify(dir: File, manifest: Manifest) {
        for ((path, entry) in manifest.files) {
            val f = BundleFiles.resolve(dir, path)
            val size = f.length()
            if (size != entry.size) {
                throw BundleException(path, "size $size bytes differs from manifest.json files[\"$path\"].size ${entry.size}")
            }
            val sha = BundleFiles.openFile(dir, path).use { Sha256.hex(it) }
            if (sha != entry.sha256) {
                throw BundleException(path, "sha256 $sha differs from manifest.json files[\"$path\"].sha256 ${entry.sha256}: the file was modified or corrupted")
            }
        }
    }
}
