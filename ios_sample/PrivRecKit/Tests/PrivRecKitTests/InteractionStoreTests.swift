import CryptoKit
import Security
import XCTest
@testable import PrivRecKit

/// A key held in memory, so most store tests need no Keychain entitlement.
final class MemoryKeys: StoreKeyProvider, @unchecked Sendable {
    private var stored: SymmetricKey?
    func key() throws -> SymmetricKey {
        if let k = stored { return k }
        let k = SymmetricKey(size: .bits256)
        stored = k
        return k
    }
    func destroy() throws { stored = nil }
}

final class InteractionStoreTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("privrec-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func sample() -> UserState {
        var s = UserState(modelVersion: "2026-11-27T12:00:00Z-3f2a9c1d", dim: 4)
        s.user = [0.5, -1, 0.25, 0]
        s.interactions = [Interaction(itemId: "sku-3", label: 1, timeMs: 1_700_000_000_000), Interaction(itemId: "sku-9", label: 1, timeMs: 1_700_000_000_001)]
        return s
    }

    func testSaveThenLoadRoundTrips() throws {
        let store = InteractionStore(url: dir.appendingPathComponent("state.bin"), keys: MemoryKeys())
        XCTAssertNil(try store.load())
        try store.save(sample())
        XCTAssertEqual(try store.load(), sample())
        XCTAssertEqual(try store.load()?.seenIds, ["sku-3", "sku-9"])
        let map = try ItemMap(ids: ["sku-9", "sku-1", "sku-3"])  // a later catalog: re-ordered, sku-1 added
        XCTAssertEqual(try store.load()?.seen(in: map), [2, 0])
        XCTAssertEqual(try store.load()?.history(in: try ItemMap(ids: ["sku-9"])).dropped, ["sku-3"])
    }

    func testTheFileHoldsNoPlaintext() throws {
        let url = dir.appendingPathComponent("state.bin")
        try InteractionStore(url: url, keys: MemoryKeys()).save(sample())
        let blob = try Data(contentsOf: url)
        XCTAssertNil(blob.range(of: Data("interactions".utf8)))
        XCTAssertNil(blob.range(of: Data("model_version".utf8)))
        // nonce (12) + JSON length + tag (16)
        XCTAssertEqual(blob.count, 12 + (try JSONEncoder().encode(sample())).count + 16)
    }

    func testAFlippedByteIsRejected() throws {
        let url = dir.appendingPathComponent("state.bin")
        let store = InteractionStore(url: url, keys: MemoryKeys())
        try store.save(sample())
        var blob = try Data(contentsOf: url)
        blob[blob.count / 2] ^= 0x01
        try blob.write(to: url)
        XCTAssertThrowsError(try store.load()) { XCTAssertNotNil($0 as? PrivRecError) }
    }

    func testAnotherKeyCannotOpenIt() throws {
        let url = dir.appendingPathComponent("state.bin")
        try InteractionStore(url: url, keys: MemoryKeys()).save(sample())
        XCTAssertThrowsError(try InteractionStore(url: url, keys: MemoryKeys()).load())
    }

    func testEraseRemovesFileAndKey() throws {
        let keys = MemoryKeys()
        let url = dir.appendingPathComponent("state.bin")
        let store = InteractionStore(url: url, keys: keys)
        try store.save(sample())
        let oldKey = try keys.key()
        try store.erase()
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertNotEqual(try keys.key().withUnsafeBytes { Data($0) }, oldKey.withUnsafeBytes { Data($0) })
    }

    func testTheKeychainKeyPersistsAcrossProviders() throws {
        let service = "dev.privrec.tests.\(UUID().uuidString)"
        let a = KeychainKeyProvider(service: service)
        let first: SymmetricKey
        do {
            first = try a.key()
        } catch PrivRecError.store(let detail) where detail.contains("\(errSecMissingEntitlement)") {
            throw XCTSkip("this test host has no Keychain entitlement: \(detail)")
        }
        defer { try? a.destroy() }
        let again = try KeychainKeyProvider(service: service).key()
        XCTAssertEqual(first.withUnsafeBytes { Data($0) }, again.withUnsafeBytes { Data($0) })
        let url = dir.appendingPathComponent("state.bin")
        try InteractionStore(url: url, keys: a).save(sample())
        XCTAssertEqual(try InteractionStore(url: url, keys: KeychainKeyProvider(service: service)).load(), sample())
    }
}
