import CryptoKit
import Foundation

/// One interaction: model row, label (1 = liked), time in ms since 1970.
public struct Interaction: Codable, Equatable, Sendable {
    public let item: Int
    public let label: Float
    public let timeMs: Int64

    public init(item: Int, label: Float = 1, timeMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        self.item = item
        self.label = label
        self.timeMs = timeMs
    }

    enum CodingKeys: String, CodingKey { case item, label, timeMs = "time_ms" }
}

/// What the store seals: the same JSON document as the Android sample's `InteractionLog`
/// (`{"version", "model_version", "user", "interactions"}`).
public struct UserState: Codable, Equatable, Sendable {
    public var version = 1
    public var modelVersion: String
    public var user: [Float]
    public var interactions: [Interaction]

    public init(modelVersion: String, dim: Int) {
        self.modelVersion = modelVersion
        self.user = [Float](repeating: 0, count: dim)
        self.interactions = []
    }

    /// Items already seen: excluded from recommendations.
    public var seen: Set<Int> { Set(interactions.map(\.item)) }

    /// The history the recipe rebuilds the user vector from: item rows, oldest first.
    public var history: [Int] { interactions.map(\.item) }

    /// The weight of each `history` entry: its stored label.
    public var weights: [Float] { interactions.map(\.label) }

    /// Removes every interaction with `item` (an unlike). The user vector is unchanged until it is rebuilt.
    public mutating func removeInteractions(with item: Int) {
        interactions.removeAll { $0.item == item }
    }

    enum CodingKeys: String, CodingKey { case version, modelVersion = "model_version", user, interactions }
}

/// The user's interactions and user vector, sealed with AES-256-GCM (CryptoKit) under a Keychain key.
///
/// File: `AES.GCM.SealedBox.combined` (12-byte nonce ‖ ciphertext ‖ 16-byte tag), a fresh random nonce per
/// write, associated data binding the blob to this store; written atomically with complete file protection.
public final class InteractionStore {
    private let url: URL
    private let keys: StoreKeyProvider
    private static let aad = Data("privrec interaction store v1".utf8)

    public init(url: URL, keys: StoreKeyProvider = KeychainKeyProvider()) {
        self.url = url
        self.keys = keys
    }

    /// The stored state, or nil when nothing is stored. Throws if the file was altered or the key is gone.
    public func load() throws -> UserState? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            let box = try AES.GCM.SealedBox(combined: try Data(contentsOf: url))
            let plain = try AES.GCM.open(box, using: try keys.key(), authenticating: Self.aad)
            return try JSONDecoder().decode(UserState.self, from: plain)
        } catch let error as PrivRecError {
            throw error
        } catch {
            throw PrivRecError.store("cannot open \(url.lastPathComponent): \(error)")
        }
    }

    public func save(_ state: UserState) throws {
        let plain = try JSONEncoder().encode(state)
        let sealed = try AES.GCM.seal(plain, using: try keys.key(), nonce: AES.GCM.Nonce(), authenticating: Self.aad)
        guard let combined = sealed.combined else { throw PrivRecError.store("AES-GCM produced no combined box") }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        #if os(iOS)
        try combined.write(to: url, options: [.atomic, .completeFileProtection])
        #else
        try combined.write(to: url, options: [.atomic])
        #endif
    }

    /// Deletes the file and the key.
    public func erase() throws {
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
        try keys.destroy()
    }
}
