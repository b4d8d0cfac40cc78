import CryptoKit
import XCTest
@testable import PrivRecKit

/// Verification and the golden self-test against a real, signed bundle.
///
/// Export one first (needs the Core ML artifact; see ios_sample/README.md), signed with
/// `privrec export ... --sign-key KEY`, then:
/// `PRIVREC_TEST_BUNDLE=/path/to/bundle PRIVREC_TEST_PUBLIC_KEY=/path/to/privrec_signing_key.pub swift test`
/// (macOS 13+; Core ML runs the packages on the CPU).
final class BundleTests: XCTestCase {
    private func bundleDirectory() throws -> URL {
        guard let path = ProcessInfo.processInfo.environment["PRIVREC_TEST_BUNDLE"] else {
            throw XCTSkip("set PRIVREC_TEST_BUNDLE to a bundle written by `privrec export --formats coreml --sign-key KEY`")
        }
        return URL(fileURLWithPath: path)
    }

    /// The publisher key the bundle was signed with, pinned as an app pins it.
    private func publicKey() throws -> Curve25519.Signing.PublicKey {
        guard let path = ProcessInfo.processInfo.environment["PRIVREC_TEST_PUBLIC_KEY"] else {
            throw XCTSkip("set PRIVREC_TEST_PUBLIC_KEY to the privrec_signing_key.pub the bundle was signed with")
        }
        return try BundleSignature.publicKey(base64: String(contentsOfFile: path, encoding: .utf8))
    }

    private func loadSigned(_ dir: URL) throws -> PrivRecBundle {
        try PrivRecBundle.load(from: dir, publicKey: try publicKey())
    }

    private func copy(_ dir: URL) throws -> URL {
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("privrec-bundle-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: dir, to: target)
        addTeardownBlock { try? FileManager.default.removeItem(at: target) }
        return target
    }

    func testGoldenSelfTestPassesOnCoreML() async throws {
        let bundle = try loadSigned(try bundleDirectory())
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("privrec-compiled-\(UUID().uuidString)")
        let models = try await CoreMLSignatures.load(bundle: bundle, cacheDirectory: cache)
        let results = SelfTest.run(bundle.golden, manifest: bundle.manifest, on: models)
        XCTAssertEqual(Set(results.map(\.signature)), ["score", "recommend", "finetune"])
        for r in results {
            XCTAssertTrue(r.passed, "golden case \(r.id) \(r.signature): \(r.failure ?? "") (max error \(r.maxError))")
        }
    }

    /// The self-test must be able to fail: a backend whose scores are off by 3 × tolerance is caught.
    func testSelfTestCatchesWrongScores() async throws {
        struct Shifted: RecommenderSignatures {
            let base: RecommenderSignatures
            let delta: Float
            func score(user: [Float], itemIds: [Int32]) throws -> [Float] { try base.score(user: user, itemIds: itemIds).map { $0 + delta } }
            func recommend(user: [Float], mask: [Float]) throws -> (ids: [Int32], scores: [Float]) { try base.recommend(user: user, mask: mask) }
            func finetune(user: [Float], itemIds: [Int32], labels: [Float], lr: Float, l2: Float) throws -> (user: [Float], loss: Float) {
                let out = try base.finetune(user: user, itemIds: itemIds, labels: labels, lr: lr, l2: l2)
                return (out.user, out.loss + delta)
            }
        }
        let bundle = try loadSigned(try bundleDirectory())
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("privrec-compiled-\(UUID().uuidString)")
        let models = try await CoreMLSignatures.load(bundle: bundle, cacheDirectory: cache)
        let tol = Float(bundle.golden.cases[0].tolerance)
        let results = SelfTest.run(bundle.golden, manifest: bundle.manifest, on: Shifted(base: models, delta: 3 * tol))
        XCTAssertTrue(results.filter { $0.signature == "score" }.allSatisfy { !$0.passed })
        XCTAssertTrue(results.filter { $0.signature == "finetune" }.allSatisfy { !$0.passed })
        XCTAssertTrue(results.filter { $0.signature == "recommend" }.allSatisfy { $0.passed })
    }

    func testAFlippedByteInTheWeightsIsRefusedNamingTheFile() throws {
        let dir = try copy(try bundleDirectory())
        let url = dir.appendingPathComponent("weights.safetensors")
        var data = try Data(contentsOf: url)
        data[data.count - 5] ^= 0x01
        try data.write(to: url)
        XCTAssertThrowsError(try loadSigned(dir)) { error in
            XCTAssertEqual((error as? PrivRecError)?.file, "weights.safetensors")
            XCTAssertTrue(error.localizedDescription.contains("sha256"))
        }
    }

    func testANewerSchemaIsRefused() throws {
        let dir = try copy(try bundleDirectory())
        let url = dir.appendingPathComponent("manifest.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        json["schema_version"] = 2
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        // With the pinned key the edit never gets past the signature; without one, the schema check names the field.
        XCTAssertThrowsError(try loadSigned(dir)) { error in
            XCTAssertEqual((error as? PrivRecError)?.file, "manifest.sig")
        }
        XCTAssertThrowsError(try PrivRecBundle.load(from: dir, publicKey: nil, allowUnsigned: true)) { error in
            XCTAssertEqual((error as? PrivRecError)?.file, "manifest.json")
        }
    }

    /// Verification on a hand-made directory: runs without any exported bundle.
    func testVerifierNamesTheFileThatDiffers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("privrec-verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("Pkg.mlpackage"), withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let content = Data("hello bundle".utf8)
        try content.write(to: dir.appendingPathComponent("Pkg.mlpackage/Manifest.json"))
        let digest = SHA256.hash(data: content).map { String(format: "%02x", $0) }.joined()
        let files = ["Pkg.mlpackage/Manifest.json": Manifest.FileEntry(sha256: digest, size: Int64(content.count))]
        XCTAssertNoThrow(try BundleVerifier.verify(directory: dir, files: files))

        try Data("hello bundlE".utf8).write(to: dir.appendingPathComponent("Pkg.mlpackage/Manifest.json"))
        XCTAssertThrowsError(try BundleVerifier.verify(directory: dir, files: files)) { error in
            XCTAssertEqual((error as? PrivRecError)?.file, "Pkg.mlpackage/Manifest.json")
        }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("Pkg.mlpackage/Manifest.json"))
        XCTAssertThrowsError(try BundleVerifier.verify(directory: dir, files: files)) { error in
            XCTAssertTrue(error.localizedDescription.contains("missing"))
        }
    }
}
