import CryptoKit
import Foundation
import XCTest
@testable import PrivRecKit

/// `manifest.sig` (docs/BUNDLE.md, "Signed bundles") on hand-made directories, no exported bundle needed: the
/// RFC 8032 vector (the golden values the Python and Kotlin tests check too), a manifest signed with a fresh
/// key, a wrong key, an edited manifest, a missing or linked signature, and the path rules.
final class SignatureTests: XCTestCase {
    private func directory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("privrec-signature-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func writeSignature(_ dir: URL, keyID: String, signature: Data) throws {
        let record: [String: Any] = ["algorithm": "ed25519", "key_id": keyID, "signature": signature.base64EncodedString()]
        try JSONSerialization.data(withJSONObject: record).write(to: dir.appendingPathComponent(BundleSignature.fileName))
    }

    private func assertRefused(_ fragment: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual((error as? PrivRecError)?.file, BundleSignature.fileName, file: file, line: line)
            let message = error.localizedDescription
            XCTAssertTrue(message.contains(fragment), "message <\(message)> lacks <\(fragment)>", file: file, line: line)
        }
    }

    func testTheRFC8032VectorVerifies() throws {
        // RFC 8032, section 7.1, TEST 1: the empty message.
        let key = try BundleSignature.publicKey(base64: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n")
        XCTAssertEqual(BundleSignature.keyID(key), "21fe31dfa154a261")
        let dir = try directory()
        let signature = Data(base64Encoded: "5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw==")!
        try writeSignature(dir, keyID: "21fe31dfa154a261", signature: signature)
        XCTAssertEqual(try BundleSignature.verify(directory: dir, manifestData: Data(), publicKey: key), "21fe31dfa154a261")
        assertRefused("does not verify manifest.json") { try BundleSignature.verify(directory: dir, manifestData: Data([0]), publicKey: key) }
    }

    func testASignedManifestVerifiesAndAnEditedOneDoesNot() throws {
        let publisher = Curve25519.Signing.PrivateKey()
        let pinned = publisher.publicKey
        let dir = try directory()
        let manifest = Data("{\"privacy\": {\"mode\": \"none\", \"ledger\": []}}\n".utf8)
        try writeSignature(dir, keyID: BundleSignature.keyID(pinned), signature: try publisher.signature(for: manifest))
        XCTAssertNoThrow(try BundleSignature.verify(directory: dir, manifestData: manifest, publicKey: pinned))

        let edited = Data("{\"privacy\": {\"mode\": \"central\", \"epsilon\": 0.1, \"ledger\": []}}\n".utf8)
        assertRefused("does not verify manifest.json") { try BundleSignature.verify(directory: dir, manifestData: edited, publicKey: pinned) }

        let other = Curve25519.Signing.PrivateKey().publicKey
        assertRefused("not the pinned public key") { try BundleSignature.verify(directory: dir, manifestData: manifest, publicKey: other) }

        // An attacker's signature that claims the pinned key's id.
        let attacker = Curve25519.Signing.PrivateKey()
        try writeSignature(dir, keyID: BundleSignature.keyID(pinned), signature: try attacker.signature(for: manifest))
        assertRefused("does not verify manifest.json") { try BundleSignature.verify(directory: dir, manifestData: manifest, publicKey: pinned) }
    }

    func testAMissingMalformedOrLinkedSignatureIsRefused() throws {
        let pinned = Curve25519.Signing.PrivateKey().publicKey
        let dir = try directory()
        assertRefused("missing: the bundle is unsigned") { try BundleSignature.verify(directory: dir, manifestData: Data(), publicKey: pinned) }
        try Data("{\"algorithm\": \"rsa\", \"key_id\": \"x\", \"signature\": \"x\"}".utf8).write(to: dir.appendingPathComponent(BundleSignature.fileName))
        assertRefused("field \"algorithm\" must be \"ed25519\"") { try BundleSignature.verify(directory: dir, manifestData: Data(), publicKey: pinned) }
        try writeSignature(dir, keyID: BundleSignature.keyID(pinned), signature: Data(count: 10))
        assertRefused("64-byte Ed25519 signature") { try BundleSignature.verify(directory: dir, manifestData: Data(), publicKey: pinned) }

        let elsewhere = try directory()
        try writeSignature(elsewhere, keyID: BundleSignature.keyID(pinned), signature: Data(count: 64))
        try FileManager.default.removeItem(at: dir.appendingPathComponent(BundleSignature.fileName))
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(BundleSignature.fileName),
                                                   withDestinationURL: elsewhere.appendingPathComponent(BundleSignature.fileName))
        assertRefused("is a symbolic link") { try BundleSignature.verify(directory: dir, manifestData: Data(), publicKey: pinned) }
    }

    func testAnUnsignedLoadNeedsAnExplicitOptIn() throws {
        let dir = try directory()
        XCTAssertThrowsError(try PrivRecBundle.load(from: dir, publicKey: nil)) { error in
            XCTAssertTrue(error.localizedDescription.contains("a pinned public key is required"))
        }
        XCTAssertThrowsError(try PrivRecBundle.load(from: dir, publicKey: Curve25519.Signing.PrivateKey().publicKey, allowUnsigned: true)) { error in
            XCTAssertTrue(error.localizedDescription.contains("cannot be combined"))
        }
    }

    func testPathRules() {
        XCTAssertNil(BundleFiles.pathProblem("RecommenderScore.mlpackage/Data/com.apple.CoreML/model.mlmodel"))
        for bad in ["/etc/passwd", "../model.onnx", "a//b", "./a", "a\\b", "C:/x", "a\u{0}b", ""] {
            XCTAssertNotNil(BundleFiles.pathProblem(bad), bad)
        }
        let details = JSONValue.object([
            "graphs": .object(["score": .string("/etc/evil.onnx")]),
            "opset": .number(17),
            "variants": .object(["iOS16": .object(["packages": .object(["score": .string("RecommenderScore.mlpackage")])])]),
        ])
        let paths = Manifest.detailPaths(details, at: "artifacts.onnx.details").map { $0.0 }
        XCTAssertEqual(paths, ["artifacts.onnx.details.graphs.score", "artifacts.onnx.details.variants.iOS16.packages.score"])
        XCTAssertNotNil(BundleFiles.nestingProblem(Data(String(repeating: "[", count: 65).utf8)))
        XCTAssertNil(BundleFiles.nestingProblem(Data("{\"a\": \"[[[[\"}".utf8)))
    }
}
