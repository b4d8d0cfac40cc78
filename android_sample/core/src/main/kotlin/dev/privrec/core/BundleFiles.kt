package dev.privrec.core

import java.io.ByteArrayOutputStream
import java.io.File
import java.io.IOException
import java.io.InputStream
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction
import java.nio.file.Files
import java.nio.file.LinkOption
import java.nio.file.attribute.BasicFileAttributes

/**
 * Bundle files on disk, as docs/BUNDLE.md ("Paths") says, the same rules as privrec/export/files.py.
 *
 * A path in a manifest is relative, `/`-separated and normalised (no empty, `.` or `..` segment, no leading
 * `/`, no backslash, colon or control character, at most [MAX_PATH_LENGTH] characters). A file is read only
 * when every component from the bundle directory down to it exists, none is a symbolic link, and the last
 * is a regular file; it is opened without following links. So a link written into a bundle (even one whose
 * target has the listed bytes) never makes the app read a file outside it. Failures are [BundleException]s
 * naming the file.
 */
object BundleFiles {
    const val MAX_PATH_LENGTH = 1024
    /** `manifest.json` larger than this is refused before it is parsed (about a million titled items). */
    const val MAX_MANIFEST_BYTES = 128L shl 20
    /** Files no manifest may list: the manifest itself and its signature. */
    val RESERVED = setOf(Manifest.FILE, BundleSignature.FILE)

    /** Why [path] is not a valid bundle path, or null when it is one. */
    fun pathProblem(path: String): String? {
        if (path.length == 0 || path.length > MAX_PATH_LENGTH) {
            return "a path of ${path.length} characters (1 to $MAX_PATH_LENGTH allowed)"
        }
        if (path.startsWith("/")) return "an absolute path"
        for (c in path) {
            if (c == '\\' || c == ':' || c < ' ' || c == '\u007f') return "a path with a backslash, colon or control character"
        }
        if (path.split('/').any { it.length == 0 || it == "." || it == ".." }) {
            return "a path that is not normalised (an empty, '.' or '..' segment)"
        }
        return null
    }

    /** Whether [path] exists in [dir] as anything at all, a dangling link included. */
    fun exists(dir: File, path: String): Boolean = Files.exists(File(dir, path).toPath(), LinkOption.NOFOLLOW_LINKS)

    /**
     * [dir]/[path] after checking, without following links, that every component exists, none is a symbolic
     * link, and the last is a regular file (a directory with [directory]).
     */
    fun resolve(dir: File, path: String, directory: Boolean = false): File {
        val problem = pathProblem(path)
        if (problem != null) throw BundleException(path, "is $problem: every path in a bundle is relative and inside it")
        var current = dir.toPath()
        val parts = path.split('/')
        var attrs: BasicFileAttributes? = null
        for (i in parts.indices) {
            current = current.resolve(parts[i])
            val shown = parts.subList(0, i + 1).joinToString("/")
            val a = try {
                Files.readAttributes(current, BasicFileAttributes::class.java, LinkOption.NOFOLLOW_LINKS)
            } catch (e: IOException) {
                throw BundleException(path, "is listed in manifest.json \"files\" but missing from $dir")
            }
            if (a.isSymbolicLink) {
                throw BundleException(path, "\"$shown\" is a symbolic link; a bundle holds regular files only (a link could point outside the bundle)")
            }
            if (i < parts.size - 1 && !a.isDirectory) throw BundleException(path, "\"$shown\" is not a directory")
            attrs = a
        }
        val last = attrs ?: throw BundleException(path, "is an empty path")
        if (directory && !last.isDirectory) throw BundleException(path, "must be a directory of the bundle")
        if (!directory && !last.isRegularFile) throw BundleException(path, "must be a regular file")
        return current.toFile()
    }

    /** Opens [path] after [resolve]'s checks, without following a link swapped in after them. */
    fun openFile(dir: File, path: String): InputStream =
        Files.newInputStream(resolve(dir, path).toPath(), LinkOption.NOFOLLOW_LINKS)

    /** The bytes of [path], refusing a file larger than [maxBytes]. */
    fun read(dir: File, path: String, maxBytes: Long): ByteArray {
        val out = ByteArrayOutputStream()
        openFile(dir, path).use { input ->
            val buffer = ByteArray(1 shl 16)
            var total = 0L
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                total += n
                if (total > maxBytes) throw BundleException(path, "is larger than the $maxBytes bytes it may hold")
                out.write(buffer, 0, n)
            }
        }
        return out.toByteArray()
    }

    /**
     * The bytes of a listed file, checked against its `files` entry (size, then sha256) after they are read:
     * what is returned is exactly what was hashed, so a file replaced after [BundleVerifier.verify] is refused.
     */
    fun readListed(dir: File, manifest: Manifest, path: String): ByteArray {
        val entry = manifest.files[path]
            ?: throw BundleException(path, "is not listed in manifest.json \"files\": a reader never uses an unlisted file")
        val bytes = read(dir, path, entry.size)
        if (bytes.size.toLong() != entry.size) {
            throw BundleException(path, "size ${bytes.size} bytes differs from manifest.json files[\"$path\"].size ${entry.size}")
        }
        val sha = Sha256.hex(bytes)
        if (sha != entry.sha256) {
            throw BundleException(path, "sha256 $sha differs from manifest.json files[\"$path\"].sha256 ${entry.sha256}: the file was modified or corrupted")
        }
        return bytes
    }

    /** [bytes] as strict UTF-8 (a malformed sequence is refused, never replaced). */
    fun utf8(bytes: ByteArray, file: String): String = try {
        Charsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
            .decode(ByteBuffer.wrap(bytes))
            .toString()
    } catch (e: CharacterCodingException) {
        throw BundleException(file, "is not valid UTF-8 (${e.message})")
    }
}
