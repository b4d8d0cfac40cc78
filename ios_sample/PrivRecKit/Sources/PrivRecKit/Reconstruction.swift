import Foundation

/// The reconstruction recipe: how a device rebuilds its user vector from its history, the way the model it
/// holds was trained and evaluated. The manifest's `finetune` block carries it (`Manifest.finetune`); the
/// Python SDK (`privrec.sdk.recipe`), the Android core and this package follow the same two steps, and
/// tests/golden/reconstruction_recipe.json pins their results.
///
/// 1. `labels(history:numItems:weights:)`: for a history `h_0 … h_(M-1)` (item rows, oldest first) with
///    weights `w_j` (default 1), the item at position `j` was `r = M - 1 - j` interactions before the
///    latest; its label is `w_j * 0.5^(r / recencyHalfLife)` (`w_j` without a half-life). A repeated item
///    keeps its largest label; items outside the history are 0.
/// 2. `fit(labels:dim:using:)`: from `u = 0`, call the `finetune` signature `calls` times with every catalog
///    item as a candidate, those labels, and `lr` and `l2`; each call runs the `steps` gradient steps baked
///    into the model (Singhal et al. 2021, "Federated Reconstruction", §3: the item table stays frozen while
///    the local vector is fitted).
///
/// The vector is always rebuilt from the whole history, never nudged from the previous one, so a like, an
/// unlike or an app restart all give the vector the model was evaluated with.
public struct ReconstructionRecipe: Codable, Equatable, Sendable {
    /// Gradient steps per `finetune` call (baked into the models).
    public let steps: Int
    /// Step size of every step.
    public let lr: Double
    /// L2 coefficient on the user vector.
    public let l2: Double
    /// `finetune` calls per reconstruction; 1 when the manifest has no `calls`.
    public let calls: Int
    /// The label of an item halves every this many interactions back in the history; nil (null or absent
    /// in the manifest) gives every item its weight.
    public let recencyHalfLife: Double?

    enum CodingKeys: String, CodingKey { case steps, lr, l2, calls, recencyHalfLife = "recency_half_life" }

    public init(steps: Int, lr: Double, l2: Double, calls: Int = 1, recencyHalfLife: Double? = nil) {
        self.steps = steps
        self.lr = lr
        self.l2 = l2
        self.calls = calls
        self.recencyHalfLife = recencyHalfLife
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        steps = try c.decode(Int.self, forKey: .steps)
        lr = try c.decode(Double.self, forKey: .lr)
        l2 = try c.decode(Double.self, forKey: .l2)
        calls = try c.decodeIfPresent(Int.self, forKey: .calls) ?? 1
        recencyHalfLife = try c.decodeIfPresent(Double.self, forKey: .recencyHalfLife)
    }

    /// Why these values cannot be a recipe (the manifest field and the constraint), or nil when they can.
    func problem() -> String? {
        if steps <= 0 { return "field \"finetune.steps\" must be > 0. Found \(steps)." }
        if !(lr > 0 && lr.isFinite) { return "field \"finetune.lr\" must be a finite number > 0. Found \(lr)." }
        if !(l2 >= 0 && l2.isFinite) { return "field \"finetune.l2\" must be a finite number >= 0. Found \(l2)." }
        if calls <= 0 { return "field \"finetune.calls\" must be > 0. Found \(calls)." }
        if let h = recencyHalfLife, !(h > 0 && h.isFinite) {
            return "field \"finetune.recency_half_life\" must be null or a number > 0. Found \(h)."
        }
        return nil
    }

    /// Step 1: the label vector `[numItems]` of `history` (item rows, oldest first).
    ///
    /// Throws `PrivRecError.invalidInput` for an empty history, a row outside `[0, numItems)`, `weights` of
    /// another length, a negative or non-finite weight, or labels that are all zero.
    public func labels(history: [Int], numItems: Int, weights: [Float]? = nil) throws -> [Float] {
        guard numItems > 0 else { throw PrivRecError.invalidInput("`numItems` must be > 0. Found \(numItems).") }
        guard !history.isEmpty else {
            throw PrivRecError.invalidInput("`history` must hold at least one item: a device with no interactions has no user vector.")
        }
        if let pos = history.firstIndex(where: { !(0..<numItems).contains($0) }) {
            throw PrivRecError.invalidInput("`history` must be in [0, \(numItems)). Found \(history[pos]) at position \(pos).")
        }
        if let weights {
            guard weights.count == history.count else {
                throw PrivRecError.invalidInput("`weights` must have one weight per history item (\(history.count)). Found \(weights.count).")
            }
            if let pos = weights.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
                throw PrivRecError.invalidInput("`weights` must be finite and >= 0. Found \(weights[pos]) at position \(pos).")
            }
        }
        var labels = [Float](repeating: 0, count: numItems)
        let last = history.count - 1
        for (j, item) in history.enumerated() {
            var label = Double(weights?[j] ?? 1)
            if let h = recencyHalfLife { label *= pow(0.5, Double(last - j) / h) }
            labels[item] = max(labels[item], Float(label))
        }
        guard labels.contains(where: { $0 > 0 }) else {
            throw PrivRecError.invalidInput("the history's labels are all zero: at least one item needs a positive weight.")
        }
        return labels
    }

    /// Step 2: `calls` calls of `backend`'s `finetune` over the whole catalog (`labels.count` items) from
    /// zeros. Returns the user vector and the loss of the last call; backend errors propagate.
    public func fit(labels: [Float], dim: Int, using backend: RecommenderSignatures) throws -> (user: [Float], loss: Float) {
        if let problem = problem() { throw PrivRecError.invalidInput(problem) }
        guard !labels.isEmpty else { throw PrivRecError.invalidInput("`labels` must hold one label per catalog item. Found none.") }
        guard dim > 0 else { throw PrivRecError.invalidInput("`dim` must be > 0. Found \(dim).") }
        let candidates = Array(0..<Int32(labels.count))
        var user = [Float](repeating: 0, count: dim)
        var loss = Float.nan
        for call in 0..<calls {
            let out = try backend.finetune(user: user, itemIds: candidates, labels: labels, lr: Float(lr), l2: Float(l2))
            guard out.user.count == dim else {
                throw PrivRecError.model(signature: "finetune", detail: "call \(call) returned \(out.user.count) values; the user vector has \(dim)")
            }
            user = out.user
            loss = out.loss
        }
        return (user, loss)
    }

    /// Both steps: the user vector of `history` (with optional `weights`) through `backend`.
    public func reconstruct(history: [Int], weights: [Float]? = nil, numItems: Int, dim: Int,
                            using backend: RecommenderSignatures) throws -> (user: [Float], loss: Float) {
        try fit(labels: labels(history: history, numItems: numItems, weights: weights), dim: dim, using: backend)
    }
}
