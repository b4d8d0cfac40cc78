import CryptoKit
import Foundation

/// Bundle files on disk, as docs/BUNDLE.md ("Paths") says; the same rules as privrec/export/files.py and the
/// Kotlin core's `BundleFiles`.
///
/// A path in a manifest is relative, `/`-separated and normalised (no empty, `.` or `..` segment, no leading
/// `/`, no backslash, colon or control character, at most 1024 characters). A file is read only when every
/// component from the bundle directory down to it exists, none is a symbolic link, and the last is a regular
/// file; it is opened with `O_NOFOLLOW`. So a link written into a bundle (even one whose target has the listed
/// bytes) never makes the app read a file outside it.
enum BundleFiles {
    static let maxPathLength = 1024
    /// `manifest.json` larger than this is refused before it is parsed (about a million titled items).
    static let maxManifestBytes = 128 << 20
    /// Arrays and objects nested deeper than this are refused in bundle JSON (the deepest field written is about 5).
    static let maxJSONDepth = 64
    /// Files no manifest may list: the manifest itself and its signature.
    static let reserved: Set<String> = [Manifest.fileName, BundleSignature.fileName]

    /// Why `path` is not a valid bundle path, or nil when it is one.
    static func pathProblem(_ path: String) -> String? {
        if path.isEmpty || path.count > maxPathLength { return "a path of \(path.count) characters (1 to \(maxPathLength) allowed)" }
        if path.hasPrefix("/") { return "an absolute path" }
        if path.unicodeScalars.contains(where: { $0 == "\\" || $0 == ":" || $0.value < 0x20 || $0.value == 0x7F }) {
            return "a path with a backslash, colon or control character"
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            return "a path that is not normalised (an empty, '.' or '..' segment)"
        }
        return nil
    }

    /// Whether anything (a dangling link included) exists at `url`, without following a link.
    static func exists(_ url: URL) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: url.path)) != nil
    }

    /// `directory/path` after checking, without following links, that every component exists, none is a
    /// symbolic link, and the last is a regular file (a directory with `isDirectory`).
    static func resolve(directory: URL, path: String, isDirectory: Bool = false) throws -> URL {
        func fail(_ detail: String) -> PrivRecError { .bundle(file: path, detail: detail) }
        if let problem = pathProblem(path) { throw fail("is \(problem): every path in a bundle is relative and inside it") }
        var url = directory
        let parts = path.split(separator: "/").map(String.init)
        var type: FileAttributeType?
        for (i, part) in parts.enumerated() {
            url = url.appendingPathComponent(part)
            let shown = parts[0...i].joined(separator: "/")
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path) else {
                throw fail("is listed in manifest.json \"files\" but missing")
            }
            type = attributes[.type] as? FileAttributeType
            if type == .typeSymbolicLink {
                throw fail("\"\(shown)\" is a symbolic link; a bundle holds regular files only (a link could point outside the bundle)")
            }
            if i < parts.count - 1 && type != .typeDirectory { throw fail("\"\(shown)\" is not a directory") }
        }
        if isDirectory && type != .typeDirectory { throw fail("must be a directory of the bundle") }
        if !isDirectory && type != .typeRegular { throw fail("must be a regular file") }
        return url
    }

    /// Opens a bundle file after `resolve`'s checks, with `O_NOFOLLOW` (a link swapped in after them is refused too).
    static func open(directory: URL, path: String) throws -> FileHandle {
        let url = try resolve(directory: directory, path: path)
        let fd = Foundation.open(url.path, O_RDONLY | O_NOFOLLOW)
        guard fd >= 0 else { throw PrivRecError.bundle(file: path, detail: "cannot be opened (errno \(errno))") }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// The bytes of a bundle file, refusing one larger than `maxBytes`.
    static func read(directory: URL, path: String, maxBytes: Int) throws -> Data {
        let handle = try open(directory: directory, path: path)
        defer { try? handle.close() }
        let data = try handle.read(upToCount: maxBytes + 1) ?? Data()
        guard data.count <= maxBytes else {
            throw PrivRecError.bundle(file: path, detail: "is larger than the \(maxBytes) bytes it may hold")
        }
        return data
    }

    /// The bytes of a listed file, checked against its `files` entry after they are read: what is returned is
    /// exactly what was hashed, so a file replaced after `BundleVerifier.verify` is refused, not used.
    static func readListed(directory: URL, path: String, files: [String: Manifest.FileEntry]) throws -> Data {
        guard let entry = files[path] else {
            throw PrivRecError.bundle(file: path, detail: "is not listed in manifest.json \"files\": a reader never uses an unlisted file")
        }
        let data = try read(directory: directory, path: path, maxBytes: Int(entry.size))
        guard Int64(data.count) == entry.size else {
            throw PrivRecError.bundle(file: path, detail: "size \(data.count) differs from manifest.json files[\"\(path)\"].size \(entry.size)")
        }
        let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        guard digest == entry.sha256 else {
            throw PrivRecError.bundle(file: path, detail: "sha256 \(digest) differs from manifest.json files[\"\(path)\"].sha256 \(entry.sha256): the file was modified or corrupted")
        }
        return data
    }

    /// Why `data` (JSON) nests arrays and objects deeper than `maxJSONDepth`, or nil; a scan outside strings,
    /// before any decoder sees the bytes.
    static func nestingProblem(_ data: Data) -> String? {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in data {
            if inString {
                if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
                continue
            }
            switch byte {
            case 0x22: inString = true
            case 0x5B, 0x7B:
                depth += 1
                if depth > maxJSONDepth { return "JSON nesting is deeper than \(maxJSONDepth) levels" }
            case 0x5D, 0x7D: depth -= 1
            default: break
            }
        }
        return nil
    }
}
