import CryptoKit
import Foundation

/// Checks every file `manifest.json` lists: a regular file inside the bundle reached without a symbolic link
/// (`BundleFiles.resolve`), same size, same SHA-256 (docs/BUNDLE.md).
public enum BundleVerifier {
    /// Lowercase hex SHA-256 of a file, streamed in 1 MiB chunks (Core ML packages can be large).
    public static func sha256(of url: URL) throws -> String {
        try sha256(of: try FileHandle(forReadingFrom: url))
    }

    /// Lowercase hex SHA-256 of what `handle` reads to its end (the handle is closed).
    static func sha256(of handle: FileHandle) throws -> String {
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Throws `PrivRecError.bundle` naming the first file that is missing, has another size, or another hash.
    public static func verify(directory: URL, files: [String: Manifest.FileEntry]) throws {
        for path in files.keys.sorted() {
            let entry = files[path]!
            let url = try BundleFiles.resolve(directory: directory, path: path)
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
                  let size = (attributes[.size] as? NSNumber)?.int64Value else {
                throw PrivRecError.bundle(file: path, detail: "is listed in manifest.json \"files\" but missing")
            }
            guard size == entry.size else {
                throw PrivRecError.bundle(file: path, detail: "size \(size) differs from manifest.json files[\"\(path)\"].size \(entry.size)")
            }
            let digest = try sha256(of: try BundleFiles.open(directory: directory, path: path))
            guard digest == entry.sha256 else {
                throw PrivRecError.bundle(file: path, detail: "sha256 \(digest) differs from manifest.json files[\"\(path)\"].sha256 \(entry.sha256): the file was modified or corrupted")
            }
        }
    }
}
