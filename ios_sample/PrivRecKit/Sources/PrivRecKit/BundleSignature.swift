import CryptoKit
import Foundation

/// `manifest.sig` (docs/BUNDLE.md, "Signed bundles"): `{"algorithm": "ed25519", "key_id", "signature"}`, an
/// Ed25519 signature of the exact bytes of `manifest.json`. The manifest lists every other file's SHA-256 and
/// size, so this one signature covers the whole bundle, including the privacy ledger and titles the app shows.
/// The app pins the publisher's public key (`privrec keys generate` writes it as base64); it is checked before
/// any other file of the bundle is read.
public enum BundleSignature {
    public static let fileName = "manifest.sig"
    public static let algorithm = "ed25519"
    static let maxBytes = 4096
    static let signatureSize = 64

    /// The pinned key from the one-line base64 text `privrec keys generate` writes (`privrec_signing_key.pub`).
    /// Ship it in the app; never download it with the bundle it is meant to check.
    public static func publicKey(base64: String) throws -> Curve25519.Signing.PublicKey {
        let text = base64.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let raw = Data(base64Encoded: text), raw.count == 32 else {
            throw PrivRecError.invalidInput("the public key must be the base64 of a raw 32-byte Ed25519 key, as `privrec keys generate` writes it")
        }
        return try Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    /// The first 16 hex digits of the SHA-256 of the raw 32-byte key: the `key_id` that `manifest.sig` names.
    public static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        String(SHA256.hash(data: key.rawRepresentation).map { String(format: "%02x", $0) }.joined().prefix(16))
    }

    /// Throws `PrivRecError.bundle(file: "manifest.sig", ...)` unless `manifest.sig` in `directory` is a valid
    /// signature of `manifestData` (the bytes the caller then parses) by `publicKey`: when it is missing (an
    /// unsigned bundle), malformed, names another key, or does not verify. Returns the key id.
    @discardableResult
    public static func verify(directory: URL, manifestData: Data, publicKey: Curve25519.Signing.PublicKey) throws -> String {
        let pinned = keyID(publicKey)
        func fail(_ detail: String) -> PrivRecError { .bundle(file: fileName, detail: detail) }
        guard BundleFiles.exists(directory.appendingPathComponent(fileName)) else {
            throw fail("missing: the bundle is unsigned, and this app pins public key \(pinned). Sign it with `privrec export --sign-key`.")
        }
        let data = try BundleFiles.read(directory: directory, path: fileName, maxBytes: maxBytes)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              Set(object.keys) == ["algorithm", "key_id", "signature"] else {
            throw fail("must be a JSON object with keys [\"algorithm\", \"key_id\", \"signature\"]")
        }
        guard let found = object["algorithm"] as? String, found == algorithm else {
            throw fail("field \"algorithm\" must be \"\(algorithm)\"")
        }
        guard let keyID = object["key_id"] as? String, keyID == pinned else {
            throw fail("field \"key_id\" is \"\(object["key_id"] ?? "")\", not the pinned public key \"\(pinned)\": the bundle was signed by another key (or the app pins the wrong one)")
        }
        guard let text = object["signature"] as? String, let signature = Data(base64Encoded: text), signature.count == signatureSize else {
            throw fail("field \"signature\" must be the base64 of a \(signatureSize)-byte Ed25519 signature")
        }
        guard publicKey.isValidSignature(signature, for: manifestData) else {
            throw fail("the signature does not verify manifest.json under public key \(pinned): manifest.json was changed after it was signed, or the bundle is corrupt")
        }
        return pinned
    }
}
