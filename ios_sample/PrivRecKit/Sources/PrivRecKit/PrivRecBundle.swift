import Foundation

/// A verified bundle directory: the manifest and the golden cases, after every listed file's size and
/// SHA-256 matched (nothing else in the bundle is read before that).
public struct PrivRecBundle: Sendable {
    public let directory: URL
    public let manifest: Manifest
    public let golden: Golden

    /// Reads `manifest.json`, verifies every file it lists, then reads `golden.json`.
    /// Throws `PrivRecError.bundle` naming the file and field on any mismatch.
    public static func load(from directory: URL) throws -> PrivRecBundle {
        let manifestURL = directory.appendingPathComponent(Manifest.fileName)
        guard let data = try? Data(contentsOf: manifestURL) else {
            throw PrivRecError.bundle(file: Manifest.fileName, detail: "not found in \(directory.path): drop a bundle written by `privrec export` there")
        }
        let manifest = try Manifest.parse(data)
        try BundleVerifier.verify(directory: directory, files: manifest.files)
        let golden = try Golden.parse(try Data(contentsOf: directory.appendingPathComponent(Golden.fileName)), manifest: manifest)
        return PrivRecBundle(directory: directory, manifest: manifest, golden: golden)
    }
}
