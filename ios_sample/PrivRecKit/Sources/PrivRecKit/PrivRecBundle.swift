import CryptoKit
import Foundation

/// A verified bundle directory: the manifest and the golden cases, after the manifest's signature checked out
/// against the publisher's pinned key and every listed file's size and SHA-256 matched (nothing else in the
/// bundle is read before that).
public struct PrivRecBundle: Sendable {
    public let directory: URL
    public let manifest: Manifest
    public let golden: Golden

    /// Reads `manifest.json`, checks `manifest.sig` over its exact bytes with `publicKey` (the publisher's key,
    /// pinned in the app: `BundleSignature.publicKey(base64:)`), parses those same bytes, verifies every file
    /// they list, then reads `golden.json` (hash-checked on the bytes parsed).
    ///
    /// Without a key, `allowUnsigned` must be true (development and tests only): then no signature is checked,
    /// and anyone who can write to the bundle can change the model, the titles and the privacy ledger.
    /// Throws `PrivRecError.bundle` naming the file and field on any mismatch (`manifest.sig` when the bundle is
    /// unsigned or not signed by `publicKey`), `PrivRecError.invalidInput` when neither a key nor
    /// `allowUnsigned` is given.
    public static func load(from directory: URL, publicKey: Curve25519.Signing.PublicKey?,
                            allowUnsigned: Bool = false) throws -> PrivRecBundle {
        guard publicKey != nil || allowUnsigned else {
            throw PrivRecError.invalidInput("a pinned public key is required: pass BundleSignature.publicKey(base64:) of privrec_signing_key.pub, or allowUnsigned: true for development")
        }
        guard publicKey == nil || !allowUnsigned else {
            throw PrivRecError.invalidInput("allowUnsigned cannot be combined with a pinned key: a pinned key means the bundle must be signed")
        }
        guard BundleFiles.exists(directory.appendingPathComponent(Manifest.fileName)) else {
            throw PrivRecError.bundle(file: Manifest.fileName, detail: "not found in \(directory.path): drop a bundle written by `privrec export` there")
        }
        let data = try BundleFiles.read(directory: directory, path: Manifest.fileName, maxBytes: BundleFiles.maxManifestBytes)
        if let key = publicKey {
            try BundleSignature.verify(directory: directory, manifestData: data, publicKey: key)
        }
        let manifest = try Manifest.parse(data)
        try BundleVerifier.verify(directory: directory, files: manifest.files)
        let goldenData = try BundleFiles.readListed(directory: directory, path: Golden.fileName, files: manifest.files)
        if let problem = BundleFiles.nestingProblem(goldenData) {
            throw PrivRecError.bundle(file: Golden.fileName, detail: "is not valid: \(problem)")
        }
        let golden = try Golden.parse(goldenData, manifest: manifest)
        return PrivRecBundle(directory: directory, manifest: manifest, golden: golden)
    }
}
