import CryptoKit
import Foundation

/// One recommended item.
public struct Recommendation: Identifiable, Sendable, Equatable {
    public let id: String       // the app's item id (the bundle's item map)
    public let row: Int         // its row in the installed bundle
    public let title: String    // from the bundle's item map
    public let score: Float
}

/// One liked item, oldest first.
public struct LikedItem: Identifiable, Sendable, Equatable {
    public let id: String       // the app's item id
    public let title: String    // the id itself when this catalog no longer holds the item
}

/// Everything an app needs, on one actor: the verified bundle, its Core ML models, the self-test, the
/// encrypted user state, recommendations without seen items, and the user vector rebuilt on the device
/// with the reconstruction recipe (`ReconstructionRecipe`) whenever the history changes.
public actor PrivRecSession {
    public let bundle: PrivRecBundle
    public let selfTest: [SelfTestResult]
    private let models: RecommenderSignatures
    private let store: InteractionStore
    private var state: UserState

    public var manifest: Manifest { bundle.manifest }
    public var liked: [LikedItem] {
        let m = bundle.manifest
        return state.interactions.map { i in LikedItem(id: i.itemId, title: m.itemMap.row(i.itemId).map(m.title) ?? i.itemId) }
    }

    /// Stored interactions whose items this bundle's catalog does not hold (removed by a catalog update): left
    /// out of the user vector and the seen-item mask, kept in the store.
    public var droppedItemIds: [String] { (try? state.history(in: bundle.manifest.itemMap).dropped) ?? [] }

    /// Loads and verifies the bundle against `publicKey` — the publisher's Ed25519 key, pinned in the app
    /// (`BundleSignature.publicKey(base64:)` of the `privrec_signing_key.pub` text shipped with the app, never
    /// with the bundle) — loads the Core ML models, runs the golden self-test, opens the store and rebuilds the
    /// stored history's user vector with the bundle's recipe (the stored vector is only a cache, so one written
    /// by an older app never serves).
    /// Throws if the signature or any other check fails, or any golden case fails (a model that fails its
    /// self-test never serves).
    public init(bundleDirectory: URL, publicKey: Curve25519.Signing.PublicKey, storeURL: URL,
                keys: StoreKeyProvider = KeychainKeyProvider()) async throws {
        let bundle = try PrivRecBundle.load(from: bundleDirectory, publicKey: publicKey)
        let models = try await CoreMLSignatures.load(bundle: bundle)
        let results = SelfTest.run(bundle.golden, manifest: bundle.manifest, on: models)
        if let failed = results.first(where: { !$0.passed }) {
            throw PrivRecError.model(signature: failed.signature, detail: "golden case \(failed.id) failed: \(failed.failure ?? "")")
        }
        let store = InteractionStore(url: storeURL, keys: keys)
        let m = bundle.manifest
        // The history is kept by item id, so it survives a new model version with a changed catalog: this
        // bundle maps it onto its rows and leaves out what it no longer holds. A state of the earlier format
        // (model rows) is converted only with the bundle it was written with. Start over when the state is
        // unreadable (altered file, key gone, rows of another catalog): never guess.
        let saved = try? store.load(rowsOf: m)
        self.bundle = bundle
        self.models = models
        self.selfTest = results
        self.store = store
        var state = UserState(modelVersion: m.modelVersion, dim: m.dim)
        state.interactions = saved?.interactions ?? []
        state.user = try PrivRecSession.rebuiltUser(state, manifest: m, models: models).user
        self.state = state
    }

    /// The recipe's user vector for `state`'s whole history, and the last call's loss; zeros (no loss) for an
    /// empty history.
    private static func rebuiltUser(_ state: UserState, manifest m: Manifest,
                                    models: RecommenderSignatures) throws -> (user: [Float], loss: Float?) {
        let mapped = try state.history(in: m.itemMap)  // items this catalog lacks are left out
        if mapped.rows.isEmpty { return ([Float](repeating: 0, count: m.dim), nil) }
        let out = try m.finetune.reconstruct(history: mapped.rows, weights: mapped.weights, numItems: m.numItems,
                                             dim: m.dim, using: models)
        return (out.user, out.loss)
    }

    private func checkItem(_ itemId: String) throws {
        guard bundle.manifest.itemMap.row(itemId) != nil else {
            throw PrivRecError.invalidInput("`itemId` must be an item of this bundle's catalog. Found \"\(itemId)\".")
        }
    }

    /// Rebuilds `next`'s user vector, saves it, and only then makes it the session's state: after a failure
    /// the stored and the in-memory state are both the previous one.
    private func commit(_ next: UserState) throws -> Float? {
        var next = next
        let out = try PrivRecSession.rebuiltUser(next, manifest: bundle.manifest, models: models)
        next.user = out.user
        try store.save(next)
        state = next
        return out.loss
    }

    /// The top `k` items for the user, never one already liked. `k <= top_k` uses the `recommend` model
    /// with a -inf mask on seen items; a larger `k` scores the catalog with `score` and selects with `TopK`.
    public func recommendations(k: Int? = nil) throws -> [Recommendation] {
        let m = bundle.manifest
        let want = k ?? m.topK
        let seen = state.seen(in: m.itemMap)
        var picks: [(Int, Float)]
        if want <= m.topK {
            var mask = [Float](repeating: 0, count: m.numItems)
            for i in seen { mask[i] = -.infinity }
            let top = try models.recommend(user: state.user, mask: mask)
            picks = zip(top.ids, top.scores).filter { $0.1 != -.infinity }.prefix(want).map { (Int($0.0), $0.1) }
        } else {
            let scores = try models.score(user: state.user, itemIds: (0..<Int32(m.numItems)).map { $0 })
            picks = TopK.select(scores, k: want, excluding: seen).map { ($0, scores[$0]) }
        }
        return picks.map { Recommendation(id: m.itemMap.ids[$0.0], row: $0.0, title: m.title($0.0), score: $0.1) }
    }

    /// Appends a like of `item` (the app's item id) as the latest interaction, rebuilds the user vector with the recipe over the
    /// whole history (labels with the manifest's recency half-life, `calls` `finetune` calls from zeros) and
    /// saves the encrypted state. Returns the loss of the last `finetune` call; nil when `item` is already
    /// liked (nothing changes).
    @discardableResult
    public func like(_ item: String) throws -> Float? {
        try checkItem(item)
        guard !state.seenIds.contains(item) else { return nil }
        var next = state
        next.interactions.append(Interaction(itemId: item))
        return try commit(next)
    }

    /// Removes every interaction with `item`, rebuilds the user vector the same way (zeros when nothing is
    /// left) and saves. Returns the loss of the last `finetune` call; nil when nothing is left to fit or
    /// `item` was not liked.
    @discardableResult
    public func unlike(_ item: String) throws -> Float? {
        guard state.seenIds.contains(item) else { return nil }  // an item a catalog update removed can be unliked too
        var next = state
        next.removeInteractions(with: item)
        return try commit(next)
    }

    /// Deletes the stored state and its key, and starts over.
    public func forget() throws {
        try store.erase()
        state = UserState(modelVersion: bundle.manifest.modelVersion, dim: bundle.manifest.dim)
    }
}
