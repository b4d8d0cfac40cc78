import Foundation

/// One recommended item.
public struct Recommendation: Identifiable, Sendable, Equatable {
    public let id: Int          // model row
    public let title: String    // from the bundle's item map
    public let score: Float
}

/// Everything an app needs, on one actor: the verified bundle, its Core ML models, the self-test, the
/// encrypted user state, recommendations without seen items, and on-device fine-tuning on a like.
public actor PrivRecSession {
    public let bundle: PrivRecBundle
    public let selfTest: [SelfTestResult]
    private let models: RecommenderSignatures
    private let store: InteractionStore
    private var state: UserState

    public var manifest: Manifest { bundle.manifest }
    public var likedTitles: [String] { state.interactions.map { bundle.manifest.title($0.item) } }

    /// Loads and verifies the bundle, loads the Core ML models, runs the golden self-test, opens the store.
    /// Throws if verification fails or any golden case fails (a model that fails its self-test never serves).
    public init(bundleDirectory: URL, storeURL: URL, keys: StoreKeyProvider = KeychainKeyProvider()) async throws {
        let bundle = try PrivRecBundle.load(from: bundleDirectory)
        let models = try await CoreMLSignatures.load(bundle: bundle)
        let results = SelfTest.run(bundle.golden, manifest: bundle.manifest, on: models)
        if let failed = results.first(where: { !$0.passed }) {
            throw PrivRecError.model(signature: failed.signature, detail: "golden case \(failed.id) failed: \(failed.failure ?? "")")
        }
        let store = InteractionStore(url: storeURL, keys: keys)
        let m = bundle.manifest
        // Start over when the state is unreadable (altered file, key gone) or from another model version
        // (its user vector and item rows belong to that model): never guess.
        let saved = try? store.load()
        self.bundle = bundle
        self.models = models
        self.selfTest = results
        self.store = store
        self.state = (saved?.modelVersion == m.modelVersion && saved?.user.count == m.dim) ? saved! : UserState(modelVersion: m.modelVersion, dim: m.dim)
    }

    /// The top `k` items for the user, never one already liked. `k <= top_k` uses the `recommend` model
    /// with a -inf mask on seen items; a larger `k` scores the catalog with `score` and selects with `TopK`.
    public func recommendations(k: Int? = nil) throws -> [Recommendation] {
        let m = bundle.manifest
        let want = k ?? m.topK
        let seen = state.seen
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
        return picks.map { Recommendation(id: $0.0, title: m.title($0.0), score: $0.1) }
    }

    /// Records a like, fine-tunes the user vector on the device (the `finetune` model over the whole
    /// catalog, labels = the liked items; DESIGN §4), saves the encrypted state. Returns the loss.
    @discardableResult
    public func like(_ item: Int) throws -> Float {
        let m = bundle.manifest
        precondition((0..<m.numItems).contains(item), "item \(item) is not in [0, \(m.numItems))")
        state.interactions.append(Interaction(item: item))
        var labels = [Float](repeating: 0, count: m.numItems)
        for i in state.interactions { labels[i.item] += i.label }
        let out = try models.finetune(user: state.user, itemIds: (0..<Int32(m.numItems)).map { $0 }, labels: labels,
                                      lr: Float(m.finetune.lr), l2: Float(m.finetune.l2))
        state.user = out.user
        try store.save(state)
        return out.loss
    }

    /// Deletes the stored state and its key, and starts over.
    public func forget() throws {
        try store.erase()
        state = UserState(modelVersion: bundle.manifest.modelVersion, dim: bundle.manifest.dim)
    }
}
