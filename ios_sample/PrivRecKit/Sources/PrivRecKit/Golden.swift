import Foundation

/// `golden.json`: inputs and the numpy reference's outputs for every signature (the on-device self-test).
public struct Golden: Decodable, Sendable {
    public static let fileName = "golden.json"
    /// At most this many cases (docs/BUNDLE.md, "Limits": the writer emits 9), so the self-test's work is bounded.
    public static let maxCases = 64

    public struct Inputs: Decodable, Sendable {
        public let user: [Float]
        public let itemIds: [Int32]?
        public let exclude: [Int]?
        public let labels: [Float]?
        public let lr: Float?
        public let l2: Float?

        enum CodingKeys: String, CodingKey { case user, itemIds = "item_ids", exclude, labels, lr, l2 }
    }

    public struct Outputs: Decodable, Sendable {
        public let scores: [Float]?
        public let topIds: [Int32]?
        public let topScores: [Float]?
        public let userOut: [Float]?
        public let loss: Double?

        enum CodingKeys: String, CodingKey { case scores, topIds = "top_ids", topScores = "top_scores", userOut = "user_out", loss }
    }

    public struct Case: Decodable, Sendable {
        public let signature: String
        public let inputs: Inputs
        public let outputs: Outputs
        public let tolerance: Double
    }

    public let schemaVersion: Int
    public let precision: String
    public let cases: [Case]

    enum CodingKeys: String, CodingKey { case schemaVersion = "schema_version", precision, cases }

    /// Decodes `golden.json` and checks it against the manifest; errors name `golden.json`.
    public static func parse(_ data: Data, manifest: Manifest) throws -> Golden {
        let golden: Golden
        do {
            golden = try JSONDecoder().decode(Golden.self, from: data)
        } catch {
            throw PrivRecError.bundle(file: fileName, detail: "is not valid (\(error))")
        }
        guard (1...maxCases).contains(golden.cases.count) else {
            throw PrivRecError.bundle(file: fileName, detail: "field \"cases\" must hold 1 to \(maxCases) cases. Found \(golden.cases.count).")
        }
        guard golden.schemaVersion == Manifest.schemaVersion else {
            throw PrivRecError.bundle(file: fileName, detail: "field \"schema_version\" is \(golden.schemaVersion); this reader knows \(Manifest.schemaVersion)")
        }
        guard golden.precision == manifest.precision else {
            throw PrivRecError.bundle(file: fileName, detail: "field \"precision\" is \(golden.precision) but manifest.json says \(manifest.precision)")
        }
        let covered = Set(golden.cases.map(\.signature))
        guard covered == ["score", "recommend", "finetune"] else {
            throw PrivRecError.bundle(file: fileName, detail: "field \"cases\" must cover score, recommend and finetune. Found \(covered.sorted())")
        }
        return golden
    }
}

/// The three signatures as any backend exposes them (Core ML here; a test double in tests).
public protocol RecommenderSignatures {
    func score(user: [Float], itemIds: [Int32]) throws -> [Float]
    /// Top-K of `V·user + b + mask`, `mask[i]` = -inf for excluded items and 0 otherwise.
    func recommend(user: [Float], mask: [Float]) throws -> (ids: [Int32], scores: [Float])
    func finetune(user: [Float], itemIds: [Int32], labels: [Float], lr: Float, l2: Float) throws -> (user: [Float], loss: Float)
}

/// Outcome of one golden case.
public struct SelfTestResult: Sendable, Identifiable {
    public let id: Int
    public let signature: String
    public let maxError: Double
    public let tolerance: Double
    public let failure: String?
    public var passed: Bool { failure == nil }
}

/// Runs every golden case through a backend; `recommend` compares sets up to ties (docs/BUNDLE.md).
public enum SelfTest {
    public static func run(_ golden: Golden, manifest: Manifest, on backend: RecommenderSignatures) -> [SelfTestResult] {
        golden.cases.enumerated().map { (index, c) -> SelfTestResult in
            do {
                let (err, failure) = try check(c, manifest: manifest, backend: backend)
                return SelfTestResult(id: index, signature: c.signature, maxError: err, tolerance: c.tolerance, failure: failure)
            } catch {
                return SelfTestResult(id: index, signature: c.signature, maxError: .infinity, tolerance: c.tolerance,
                                      failure: error.localizedDescription)
            }
        }
    }

    static func maxAbs(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
    }

    private static func check(_ c: Golden.Case, manifest: Manifest, backend: RecommenderSignatures) throws -> (Double, String?) {
        let tol = c.tolerance
        let u = c.inputs.user
        switch c.signature {
        case "score":
            let expected = c.outputs.scores ?? []
            let got = try backend.score(user: u, itemIds: c.inputs.itemIds ?? [])
            let err = maxAbs(got, expected)
            return (err, err <= tol ? nil : "scores differ by \(err)")
        case "recommend":
            var mask = [Float](repeating: 0, count: manifest.numItems)
            let exclude = c.inputs.exclude ?? []
            for i in exclude { mask[i] = -.infinity }
            let expIds = c.outputs.topIds ?? [], expScores = c.outputs.topScores ?? []
            let got = try backend.recommend(user: u, mask: mask)
            guard got.ids.count == expIds.count else { return (.infinity, "expected \(expIds.count) ids, got \(got.ids.count)") }
            if let bad = got.ids.first(where: { exclude.contains(Int($0)) }) { return (.infinity, "returned excluded item \(bad)") }
            let err = maxAbs(got.scores.sorted(by: >), expScores.sorted(by: >))
            if err > tol { return (err, "top_scores differ by \(err)") }
            // Sets equal up to ties: an id in only one list must score within tolerance of the K-th score.
            let kth = Double(expScores.min() ?? .nan)
            let expected = Dictionary(zip(expIds, expScores), uniquingKeysWith: { a, _ in a })
            let ours = Dictionary(zip(got.ids, got.scores), uniquingKeysWith: { a, _ in a })
            for (id, s) in ours where expected[id] == nil && abs(Double(s) - kth) > tol {
                return (err, "top_ids include \(id) (score \(s)) instead of a K-th-score tie (\(kth))")
            }
            for (id, s) in expected where ours[id] == nil && abs(Double(s) - kth) > tol {
                return (err, "top_ids miss \(id) (score \(s)), not a tie with the K-th score (\(kth))")
            }
            return (err, nil)
        case "finetune":
            let got = try backend.finetune(user: u, itemIds: c.inputs.itemIds ?? [], labels: c.inputs.labels ?? [],
                                           lr: c.inputs.lr ?? 0, l2: c.inputs.l2 ?? 0)
            let errU = maxAbs(got.user, c.outputs.userOut ?? [])
            let errL = abs(Double(got.loss) - (c.outputs.loss ?? .nan))
            if errU > tol { return (max(errU, errL), "user_out differs by \(errU)") }
            if !(errL <= tol) { return (max(errU, errL), "loss differs by \(errL)") }
            return (max(errU, errL), nil)
        default:
            return (.infinity, "unknown signature \(c.signature)")
        }
    }
}
