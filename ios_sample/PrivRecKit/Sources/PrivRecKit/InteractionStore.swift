import CryptoKit
import Foundation

/// One interaction: the app's own item id (the manifest's item map, never a model row), label (1 = liked),
/// time in ms since 1970.
public struct Interaction: Codable, Equatable, Sendable {
    public let itemId: String
    public let label: Float
    public let timeMs: Int64

    public init(itemId: String, label: Float = 1, timeMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        self.itemId = itemId
        self.label = label
        self.timeMs = timeMs
    }

    enum CodingKeys: String, CodingKey { case itemId = "item_id", label, timeMs = "time_ms" }

    /// Refuses an empty id or a label that is not finite and >= 0, naming the field.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        itemId = try c.decode(String.self, forKey: .itemId)
        label = try c.decode(Float.self, forKey: .label)
        timeMs = try c.decode(Int64.self, forKey: .timeMs)
        guard !itemId.isEmpty else { throw PrivRecError.store("interactions: \"item_id\" must be a non-empty item id.") }
        guard label.isFinite, label >= 0 else { throw PrivRecError.store("interactions: \"label\" must be finite and >= 0. Found \(label).") }
    }
}

/// What the store seals: the same JSON document as the Android sample's `InteractionLog`
/// (`{"version": 2, "model_version", "user", "interactions": [{"item_id", "label", "time_ms"}]}`).
///
/// The history is kept by item id, so it outlives the bundle it was recorded with: each bundle maps it onto
/// its own rows (`history(in:)`), and items a catalog update removed are left out (`MappedHistory.dropped`)
/// while staying stored.
public struct UserState: Codable, Equatable, Sendable {
    public var version = 2
    public var modelVersion: String
    public var user: [Float]
    public var interactions: [Interaction]

    public init(modelVersion: String, dim: Int) {
        self.modelVersion = modelVersion
        self.user = [Float](repeating: 0, count: dim)
        self.interactions = []
    }

    /// Item ids already seen.
    public var seenIds: Set<String> { Set(interactions.map(\.itemId)) }

    /// Rows of `map`'s bundle already seen: excluded from recommendations.
    public func seen(in map: ItemMap) -> Set<Int> { Set(interactions.compactMap { map.row($0.itemId) }) }

    /// The item ids, oldest first.
    public var historyIds: [String] { interactions.map(\.itemId) }

    /// The weight of each interaction: its stored label.
    public var weights: [Float] { interactions.map(\.label) }

    /// The history the recipe rebuilds the user vector from on `map`'s bundle: rows it holds, oldest first.
    public func history(in map: ItemMap) throws -> MappedHistory { try map.map(historyIds, weights: weights) }

    /// Removes every interaction with `itemId` (an unlike). The user vector is unchanged until it is rebuilt.
    public mutating func removeInteractions(with itemId: String) {
        interactions.removeAll { $0.itemId == itemId }
    }

    enum CodingKeys: String, CodingKey { case version, modelVersion = "model_version", user, interactions }
}

/// The earlier sealed document (version 1): `interactions[].item` held a model row of the bundle its
/// `model_version` names. Converted to item ids only with that bundle (`InteractionStore.load(rowsOf:)`).
struct RowsUserState: Decodable {
    struct Row: Decodable {
        let item: Int
        let label: Float
        let timeMs: Int64
        enum CodingKeys: String, CodingKey { case item, label, timeMs = "time_ms" }
    }
    let version: Int
    let modelVersion: String
    let user: [Float]
    let interactions: [Row]
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

    /// The stored state, or nil when nothing is stored. Throws if the file was altered, the key is gone, or
    /// the document is not a state (an empty item id included). A state of the earlier format (version 1,
    /// model rows) is converted to item ids when `rowsOf` is the bundle it was written with (the one its
    /// `model_version` names; rows outside its catalog are dropped), and refused otherwise: rows of another
    /// catalog would name other items.
    public func load(rowsOf bundle: Manifest? = nil) throws -> UserState? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            let box = try AES.GCM.SealedBox(combined: try Data(contentsOf: url))
            let plain = try AES.GCM.open(box, using: try keys.key(), authenticating: Self.aad)
            struct Version: Decodable { let version: Int }
            let version = try JSONDecoder().decode(Version.self, from: plain).version
            if version == 2 { return try JSONDecoder().decode(UserState.self, from: plain) }
            guard version == 1 else { throw PrivRecError.store("\"version\" must be 1 or 2. Found \(version).") }
            let old = try JSONDecoder().decode(RowsUserState.self, from: plain)
            guard let m = bundle, m.modelVersion == old.modelVersion else {
                throw PrivRecError.store("a version-1 state holds rows of model \(old.modelVersion): it converts to item ids only with that bundle's item map.")
            }
            var state = UserState(modelVersion: old.modelVersion, dim: old.user.count)
            state.user = old.user
            state.interactions = old.interactions.filter { (0..<m.itemMap.numItems).contains($0.item) }
                .map { Interaction(itemId: m.itemMap.ids[$0.item], label: $0.label, timeMs: $0.timeMs) }
            return state
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
