import Foundation
import XCTest
@testable import PrivRecKit

/// The `finetune` signature in plain Swift, Double inside, in the form of the Python reference
/// (`privrec.sdk.reconstruct.finetune_reference`); `steps` times:
/// `s = V[ids] u + b[ids]; p = softmax(s); y = labels / max(sum(labels), 1e-12); u -= lr (V[ids]^T (p - y) + l2 u)`,
/// and the loss `-sum(y log_softmax(s)) + l2/2 |u|^2` at the returned `u`.
struct ReferenceSignatures: RecommenderSignatures {
    let embedding: [[Float]]
    let bias: [Float]
    let steps: Int
    let topK: Int

    private func scores(_ u: [Double], _ ids: [Int32]) -> [Double] {
        ids.map { id in
            let row = embedding[Int(id)]
            var s = Double(bias[Int(id)])
            for j in u.indices { s += Double(row[j]) * u[j] }
            return s
        }
    }

    func score(user: [Float], itemIds: [Int32]) throws -> [Float] {
        scores(user.map { Double($0) }, itemIds).map { Float($0) }
    }

    func recommend(user: [Float], mask: [Float]) throws -> (ids: [Int32], scores: [Float]) {
        let all = try score(user: user, itemIds: Array(0..<Int32(embedding.count)))
        let masked = zip(all, mask).map { $0 + $1 }
        let ids = TopK.select(masked, k: topK)
        return (ids.map { Int32($0) }, ids.map { masked[$0] })
    }

    func finetune(user: [Float], itemIds: [Int32], labels: [Float], lr: Float, l2: Float) throws -> (user: [Float], loss: Float) {
        let total = labels.reduce(0.0) { $0 + Double($1) }
        let y = labels.map { Double($0) / max(total, 1e-12) }
        let rate = Double(lr), decay = Double(l2)
        var u = user.map { Double($0) }
        for _ in 0..<steps {
            let p = softmax(scores(u, itemIds))
            var grad = u.map { decay * $0 }
            for (r, id) in itemIds.enumerated() {
                let g = p[r] - y[r]
                let row = embedding[Int(id)]
                for j in u.indices { grad[j] += Double(row[j]) * g }
            }
            for j in u.indices { u[j] -= rate * grad[j] }
        }
        let s = scores(u, itemIds)
        let top = s.max() ?? 0
        let logZ = top + log(s.reduce(0.0) { $0 + exp($1 - top) })
        let crossEntropy = -zip(y, s).reduce(0.0) { $0 + $1.0 * ($1.1 - logZ) }
        let loss = crossEntropy + 0.5 * decay * u.reduce(0.0) { $0 + $1 * $1 }
        return (u.map { Float($0) }, Float(loss))
    }

    private func softmax(_ s: [Double]) -> [Double] {
        let top = s.max() ?? 0
        let e = s.map { exp($0 - top) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }
}

/// The reconstruction recipe against the repository's tests/golden/reconstruction_recipe.json, the fixture
/// the Python SDK and the Android core reproduce too: a 12-item × 4-dim model, its `finetune` block, and
/// cases {name, history, labels, user}.
final class ReconstructionTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            let name: String
            let history: [Int]
            let labels: [Float]
            let user: [Float]
        }

        let numItems: Int
        let dim: Int
        let itemEmbedding: [[Float]]
        let itemBias: [Float]
        let finetune: ReconstructionRecipe
        let tolerance: Double
        let cases: [Case]

        enum CodingKeys: String, CodingKey {
            case numItems = "num_items", dim, itemEmbedding = "item_embedding", itemBias = "item_bias", finetune, tolerance, cases
        }

        var reference: ReferenceSignatures {
            ReferenceSignatures(embedding: itemEmbedding, bias: itemBias, steps: finetune.steps, topK: 1)
        }
    }

    /// This file is ios_sample/PrivRecKit/Tests/PrivRecKitTests/ReconstructionTests.swift: five levels below
    /// the repository root, whether the tests run from ios_sample/PrivRecKit or from the root Package.swift.
    static let fixtureURL: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<5 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("tests/golden/reconstruction_recipe.json")
    }()

    private func fixture() throws -> Fixture {
        guard FileManager.default.fileExists(atPath: Self.fixtureURL.path) else {
            throw XCTSkip("no \(Self.fixtureURL.path): run the tests from a checkout of the repository")
        }
        let fx = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Self.fixtureURL))
        XCTAssertFalse(fx.cases.isEmpty, "the fixture holds no case")
        return fx
    }

    private func maxAbs(_ a: [Float], _ b: [Float]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
    }

    func testEveryGoldenCaseIsReproduced() throws {
        let fx = try fixture()
        for c in fx.cases {
            let labels = try fx.finetune.labels(history: c.history, numItems: fx.numItems)
            let labelErr = maxAbs(labels, c.labels)
            XCTAssertLessThanOrEqual(labelErr, fx.tolerance, "\(c.name): labels \(labels) differ from \(c.labels)")
            let user = try fx.finetune.fit(labels: labels, dim: fx.dim, using: fx.reference).user
            let userErr = maxAbs(user, c.user)
            XCTAssertLessThanOrEqual(userErr, fx.tolerance, "\(c.name): user \(user) differs from \(c.user)")
        }
    }

    /// Like 3, 7, 3, 1, 9 then unlike 7: the state's history is the fixture's `after_unlike_7` case.
    func testAnUnlikeRemovesEveryInteractionWithTheItem() throws {
        let fx = try fixture()
        let first = try XCTUnwrap(fx.cases.first { $0.name == "history" })
        let afterUnlike = try XCTUnwrap(fx.cases.first { $0.name == "after_unlike_7" })
        let map = ItemMap.implicit(fx.numItems)
        var state = UserState(modelVersion: "test", dim: fx.dim)
        state.interactions = first.history.enumerated().map { Interaction(itemId: String($0.element), timeMs: 1_700_000_000_000 + Int64($0.offset)) }
        XCTAssertEqual(try state.history(in: map).rows, first.history)
        state.removeInteractions(with: "7")
        XCTAssertEqual(try state.history(in: map).rows, afterUnlike.history)
        let labels = try fx.finetune.labels(history: try state.history(in: map).rows, numItems: fx.numItems, weights: state.weights)
        XCTAssertLessThanOrEqual(maxAbs(labels, afterUnlike.labels), fx.tolerance)
    }

    func testLabelsWithoutAHalfLifeAreTheLargestWeightOfEachItem() throws {
        let recipe = ReconstructionRecipe(steps: 1, lr: 0.1, l2: 0)
        XCTAssertEqual(try recipe.labels(history: [2, 0, 2], numItems: 4, weights: [0.5, 1, 0.25]), [1, 0, 0.5, 0])
        XCTAssertEqual(try recipe.labels(history: [1, 1], numItems: 3), [0, 1, 0])
    }

    func testWeightsMultiplyTheRecencyDecay() throws {
        // Positions 0, 1, 2 were 2, 1, 0 interactions before the latest; half-life 1.
        let recipe = ReconstructionRecipe(steps: 1, lr: 0.1, l2: 0, recencyHalfLife: 1)
        XCTAssertEqual(try recipe.labels(history: [0, 1, 2], numItems: 3, weights: [2, 2, 0.5]), [0.5, 1, 0.5])
    }

    func testBadHistoriesAreRefusedWithTheReason() {
        let recipe = ReconstructionRecipe(steps: 1, lr: 0.1, l2: 0, recencyHalfLife: 2)
        func refused(_ expected: String, _ body: () throws -> [Float], line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                XCTAssertEqual(error as? PrivRecError, .invalidInput(expected), line: line)
            }
        }
        refused("`history` must hold at least one item: a device with no interactions has no user vector.") {
            try recipe.labels(history: [], numItems: 5)
        }
        refused("`history` must be in [0, 5). Found 5 at position 1.") { try recipe.labels(history: [0, 5], numItems: 5) }
        refused("`history` must be in [0, 5). Found -1 at position 0.") { try recipe.labels(history: [-1], numItems: 5) }
        refused("`weights` must have one weight per history item (2). Found 1.") {
            try recipe.labels(history: [0, 1], numItems: 5, weights: [1])
        }
        refused("`weights` must be finite and >= 0. Found -1.0 at position 1.") {
            try recipe.labels(history: [0, 1], numItems: 5, weights: [1, -1])
        }
        refused("the history's labels are all zero: at least one item needs a positive weight.") {
            try recipe.labels(history: [0, 1], numItems: 5, weights: [0, 0])
        }
    }

    /// A backend that records its calls and returns user + 1, so the chain of calls is visible.
    final class Recording: RecommenderSignatures {
        var users: [[Float]] = []
        var candidates: [[Int32]] = []
        var rates: [[Float]] = []

        func score(user: [Float], itemIds: [Int32]) throws -> [Float] { throw PrivRecError.model(signature: "score", detail: "unused") }
        func recommend(user: [Float], mask: [Float]) throws -> (ids: [Int32], scores: [Float]) {
            throw PrivRecError.model(signature: "recommend", detail: "unused")
        }
        func finetune(user: [Float], itemIds: [Int32], labels: [Float], lr: Float, l2: Float) throws -> (user: [Float], loss: Float) {
            users.append(user)
            candidates.append(itemIds)
            rates.append([lr, l2])
            return (user.map { $0 + 1 }, Float(users.count))
        }
    }

    func testFitMakesCallsCallsFromZerosOverTheWholeCatalog() throws {
        let backend = Recording()
        let recipe = ReconstructionRecipe(steps: 5, lr: 0.25, l2: 0.5, calls: 4, recencyHalfLife: 2)
        let out = try recipe.fit(labels: [0, 1, 0, 0, 0], dim: 3, using: backend)
        XCTAssertEqual(backend.users.count, 4)
        XCTAssertEqual(backend.users.first, [0, 0, 0])  // from zeros, never from a stored vector
        XCTAssertTrue(backend.candidates.allSatisfy { $0 == [0, 1, 2, 3, 4] })
        XCTAssertTrue(backend.rates.allSatisfy { $0 == [0.25, 0.5] })
        XCTAssertEqual(out.user, [4, 4, 4])
        XCTAssertEqual(out.loss, 4)
    }

    func testTheManifestBlockDefaultsCallsAndHalfLife() throws {
        let decode = { (json: String) in try JSONDecoder().decode(ReconstructionRecipe.self, from: Data(json.utf8)) }
        XCTAssertEqual(try decode(#"{"steps": 5, "lr": 0.1, "l2": 0.5}"#), ReconstructionRecipe(steps: 5, lr: 0.1, l2: 0.5, calls: 1))
        XCTAssertEqual(try decode(#"{"steps": 5, "lr": 0.1, "l2": 0.5, "calls": 20, "recency_half_life": null}"#),
                       ReconstructionRecipe(steps: 5, lr: 0.1, l2: 0.5, calls: 20))
        let full = try decode(#"{"steps": 5, "lr": 0.1, "l2": 0.5, "calls": 4, "recency_half_life": 2.0}"#)
        XCTAssertEqual(full.calls, 4)
        XCTAssertEqual(full.recencyHalfLife, 2)
        XCTAssertNil(full.problem())
        XCTAssertEqual(ReconstructionRecipe(steps: 5, lr: 0.1, l2: 0.5, calls: 0).problem(), "field \"finetune.calls\" must be > 0. Found 0.")
        XCTAssertEqual(ReconstructionRecipe(steps: 5, lr: 0.1, l2: 0.5, recencyHalfLife: -1).problem(),
                       "field \"finetune.recency_half_life\" must be null or a number > 0. Found -1.0.")
    }
}
