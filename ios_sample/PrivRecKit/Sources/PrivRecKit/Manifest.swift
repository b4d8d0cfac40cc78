import Foundation

/// `manifest.json`, schema version 1 (docs/BUNDLE.md).
public struct Manifest: Decodable, Sendable {
    public static let fileName = "manifest.json"
    public static let schemaVersion = 1
    // Limits checked before anything is computed (docs/BUNDLE.md, "Limits"; the same in Python and Kotlin).
    public static let maxDim = 4096
    public static let maxNumItems = 10_000_000
    public static let maxFinetuneSteps = 1000
    public static let maxFinetuneCalls = 1000
    /// Keys of an artifact's `details` whose values (at any depth) are bundle paths a runner may open.
    static let detailPathKeys: Set<String> = ["external_data", "file", "files", "graphs", "packages", "path", "paths"]

    public struct TensorSpec: Codable, Equatable, Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
    }

    public struct Signature: Codable, Equatable, Sendable {
        public let inputs: [TensorSpec]
        public let outputs: [TensorSpec]
    }

    public struct WeightSpec: Codable, Equatable, Sendable {
        public let dtype: String
        public let shape: [Int]
    }

    /// One catalog entry: model row, data-set id, display title (empty when the exporter had none).
    public struct Item: Decodable, Sendable {
        public let index: Int
        public let id: String
        public let title: String

        enum CodingKeys: String, CodingKey { case index, id, title }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decode(Int.self, forKey: .index)
            id = try c.decode(String.self, forKey: .id)
            title = try c.decodeIfPresent(String.self, forKey: .title) ?? ""
        }
    }

    public struct FileEntry: Codable, Equatable, Sendable {
        public let sha256: String
        public let size: Int64
    }

    public struct Artifact: Decodable, Sendable {
        public let files: [String]
        public let precision: String
        public let details: JSONValue
    }

    /// The `finetune` block: the reconstruction recipe (`calls` defaults to 1, `recency_half_life` to nil).
    public typealias Finetune = ReconstructionRecipe

    /// The optional `item_features` field `{"file": "item_features.safetensors", "columns": f}`: public item
    /// features (genres, ...) of a model whose item table is tied to them. `file` is always
    /// `item_features.safetensors` and listed in `files` (so `BundleVerifier` checks its SHA-256 like every
    /// file's); it holds one float32 tensor `item_features` of shape `[numItems, columns]`.
    public struct ItemFeatures: Equatable, Sendable {
        public static let fileName = "item_features.safetensors"
        public static let tensorName = "item_features"
        public let file: String
        public let columns: Int

        public init(file: String, columns: Int) {
            self.file = file
            self.columns = columns
        }

        /// Checks the raw field as privrec/export/manifest.py `load_item_features` does: keys exactly `file`
        /// and `columns`, `file` is `item_features.safetensors` and listed in `files`, `columns` an integer
        /// >= 1. Returns the reason it is invalid (naming the field), or nil when it is valid.
        ///
        /// JSON numbers reach Swift as `Double`, so `"columns": 2.0` reads as 2 here (Python and Kotlin refuse it).
        static func problem(_ raw: JSONValue, files: [String: FileEntry]) -> String? {
            guard let object = raw.object else {
                return "field \"item_features\" must be an object {\"file\", \"columns\"}. Found \(describe(raw))."
            }
            let expected: Set<String> = ["file", "columns"]
            let keys = Set(object.keys)
            if keys != expected {
                return "keys at \"item_features\" differ from the schema: unexpected \(keys.subtracting(expected).sorted()), missing \(expected.subtracting(keys).sorted())"
            }
            let file = object["file"]!
            guard let name = file.string, name == fileName, files[name] != nil else {
                return "field \"item_features.file\" must be \"\(fileName)\", listed in \"files\". Found \(describe(file))."
            }
            let columns = object["columns"]!
            guard let count = integer(columns), count >= 1 else {
                return "field \"item_features.columns\" must be an integer >= 1. Found \(describe(columns))."
            }
            return nil
        }

        /// The value as an Int when it is a whole JSON number within 32 bits (booleans are not numbers).
        static func integer(_ value: JSONValue) -> Int? {
            guard let n = value.double, n.rounded() == n, abs(n) <= Double(Int32.max) else { return nil }
            return Int(n)
        }

        private static func describe(_ value: JSONValue) -> String {
            switch value {
            case .null: return "null"
            case let .bool(b): return String(b)
            case let .number(n): return integer(value).map { String($0) } ?? String(n)
            case let .string(s): return "\"\(s)\""
            case let .array(a): return "an array of \(a.count)"
            case let .object(o): return "an object with keys \(o.keys.sorted())"
            }
        }
    }

    public let schemaVersion: Int
    public let modelVersion: String
    public let privrecVersion: String
    public let dim: Int
    public let numItems: Int
    public let precision: String
    public let sparsity: Double
    public let topK: Int
    public let finetune: Finetune
    public let items: [Item]
    public let weights: [String: WeightSpec]
    public let signatures: [String: Signature]
    public let artifacts: [String: Artifact]
    public let files: [String: FileEntry]
    public let privacy: JSONValue
    /// The optional `item_features` field, checked by `parse`; nil when the bundle ships no item features
    /// (the field absent or null, as in the Python reader).
    public private(set) var itemFeatures: ItemFeatures? = nil
    /// `item_features` as written, before `parse` checks it.
    private let itemFeaturesField: JSONValue?
    /// Row ↔ the app's item id, built by `parse` from the checked `items` (the implicit `String(row)` map
    /// when the bundle has none). A device stores its history by these ids.
    public private(set) var itemMap: ItemMap = ItemMap.implicit(0)
    /// `titles[row]`, built by `parse` (empty when the bundle has no item map).
    private var titles: [String] = []

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", modelVersion = "model_version", privrecVersion = "privrec_version"
        case dim, numItems = "num_items", precision, sparsity, topK = "top_k", finetune, items, weights
        case signatures, artifacts, files, privacy, itemFeaturesField = "item_features"
    }

    /// Title of model row `index` (`"#index"` when the catalog has none).
    public func title(_ index: Int) -> String {
        if index >= 0, index < titles.count, !titles[index].isEmpty { return titles[index] }
        return "#\(index)"
    }

    /// User-level ε of the training run (`privacy.epsilon`, written by sdk/privacy/ledger.py), or nil when
    /// there is no finite guarantee: JSON has no infinity, so `null` means "none" in mode `off` and
    /// "no claim" in mode `none` (central training).
    public var epsilon: Double? { privacy["epsilon"]?.double }

    /// δ that goes with `epsilon`, or nil.
    public var delta: Double? { privacy["delta"]?.double }

    /// `none` (central training), `central` / `distributed` (DP federated training) or `off`.
    public var privacyMode: String { privacy["mode"]?.string ?? "unknown" }

    /// The DP ledger entries (one per run of identical rounds).
    public var ledger: [JSONValue] { privacy["ledger"]?.array ?? [] }

    /// The signatures every artifact must expose (docs/BUNDLE.md) for this model's size.
    func expectedSignatures() -> [String: Signature] {
        func t(_ name: String, _ dtype: String, _ shape: Int) -> TensorSpec { TensorSpec(name: name, dtype: dtype, shape: [shape]) }
        return [
            "score": Signature(inputs: [t("user", "float32", dim), t("item_ids", "int32", -1)],
                               outputs: [t("scores", "float32", -1)]),
            "recommend": Signature(inputs: [t("user", "float32", dim), t("mask", "float32", numItems)],
                                   outputs: [t("top_ids", "int32", topK), t("top_scores", "float32", topK)]),
            "finetune": Signature(inputs: [t("user", "float32", dim), t("item_ids", "int32", -1), t("labels", "float32", -1),
                                           t("lr", "float32", 1), t("l2", "float32", 1)],
                                  outputs: [t("user_out", "float32", dim), t("loss", "float32", 1)]),
        ]
    }

    /// Every leaf under a key of `detailPathKeys` in `value`, with its field path.
    static func detailPaths(_ value: JSONValue, at field: String, underPathKey: Bool = false) -> [(String, JSONValue)] {
        switch value {
        case let .object(o):
            return o.keys.sorted().flatMap { detailPaths(o[$0]!, at: "\(field).\($0)", underPathKey: underPathKey || detailPathKeys.contains($0)) }
        case let .array(a):
            return a.enumerated().flatMap { detailPaths($0.element, at: "\(field)[\($0.offset)]", underPathKey: underPathKey) }
        default:
            return underPathKey ? [(field, value)] : []
        }
    }

    /// Decodes and checks the manifest; errors name `manifest.json` and the field.
    public static func parse(_ data: Data) throws -> Manifest {
        func fail(_ detail: String) -> PrivRecError { .bundle(file: fileName, detail: detail) }
        if let problem = BundleFiles.nestingProblem(data) { throw fail("is not valid: \(problem)") }
        // Check the version before the rest, so a newer schema gets a clear message, not a decoding error.
        struct Version: Decodable { let schema_version: Int? }
        let version = (try? JSONDecoder().decode(Version.self, from: data))?.schema_version
        guard version == schemaVersion else {
            throw fail("field \"schema_version\" is \(version.map(String.init) ?? "missing"); this reader knows \(schemaVersion) only")
        }
        var m: Manifest
        do {
            m = try JSONDecoder().decode(Manifest.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw fail("field \"\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))\" is missing")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw fail("field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw fail("is not a valid manifest (\(error))")
        }
        guard ["float32", "int8", "int4"].contains(m.precision) else { throw fail("field \"precision\" must be float32, int8 or int4. Found \(m.precision).") }
        guard (1...maxDim).contains(m.dim), (1...maxNumItems).contains(m.numItems), (1...m.numItems).contains(m.topK) else {
            throw fail("fields \"dim\" in [1, \(maxDim)], \"num_items\" in [1, \(maxNumItems)] and \"top_k\" in [1, num_items]. Found \(m.dim), \(m.numItems), \(m.topK).")
        }
        guard Int64(m.dim) * Int64(m.numItems) <= Int64(Int32.max) else {
            throw fail("fields \"num_items\" × \"dim\" must be at most \(Int32.max) (the table is one array). Found \(m.numItems) × \(m.dim).")
        }
        if let problem = m.finetune.problem() { throw fail(problem) }
        guard m.finetune.steps <= maxFinetuneSteps, m.finetune.calls <= maxFinetuneCalls else {
            throw fail("fields \"finetune.steps\" and \"finetune.calls\" must be at most \(maxFinetuneSteps) and \(maxFinetuneCalls). Found \(m.finetune.steps), \(m.finetune.calls).")
        }
        // The item map: empty, or one entry per row in any order, the indices a permutation of the rows and
        // the ids the app's own, non-empty and unique (a device stores its history by them).
        guard m.items.isEmpty || m.items.count == m.numItems else {
            throw fail("field \"items\" must be empty or hold \(m.numItems) entries. Found \(m.items.count).")
        }
        var atIndex = [Int: Int]()
        var atId = [String: Int]()
        for (pos, item) in m.items.enumerated() {
            guard (0..<m.numItems).contains(item.index) else {
                throw fail("field \"items[\(pos)].index\" must be in [0, \(m.numItems)). Found \(item.index).")
            }
            if let other = atIndex.updateValue(pos, forKey: item.index) {
                let present = Set(m.items.map(\.index))
                let missing = (0..<m.numItems).first { !present.contains($0) } ?? -1
                throw fail("field \"items[\(pos)].index\" repeats index \(item.index) of items[\(other)]: the indices must be a permutation of 0..\(m.numItems - 1), and index \(missing) has no entry.")
            }
            guard !item.id.isEmpty else { throw fail("field \"items[\(pos)].id\" must be a non-empty string (the app's item id).") }
            if let other = atId.updateValue(pos, forKey: item.id) {
                throw fail("field \"items[\(pos)].id\" repeats id \"\(item.id)\" of items[\(other)]: item ids must be unique.")
            }
        }
        let byRow = m.items.sorted { $0.index < $1.index }
        m.itemMap = byRow.isEmpty ? ItemMap.implicit(m.numItems) : try ItemMap(ids: byRow.map(\.id))
        m.titles = byRow.map(\.title)
        for (name, expected) in m.expectedSignatures() where m.signatures[name] != expected {
            throw fail("field \"signatures.\(name)\" differs from docs/BUNDLE.md")
        }
        for path in m.files.keys.sorted() {
            if let problem = BundleFiles.pathProblem(path) {
                throw fail("field \"files\" holds \"\(path)\", which is not a relative path inside the bundle: \(problem)")
            }
            if BundleFiles.reserved.contains(path) {
                throw fail("field \"files\" lists \"\(path)\", which is never listed (manifest.json and manifest.sig cannot hash themselves)")
            }
            guard m.files[path]!.sha256.range(of: "^[0-9a-f]{64}$", options: .regularExpression) != nil, m.files[path]!.size >= 0 else {
                throw fail("field \"files\" entry \"\(path)\" must be {\"sha256\": 64 lowercase hex, \"size\": >= 0}")
            }
        }
        for name in m.artifacts.keys.sorted() {
            let artifact = m.artifacts[name]!
            for (i, path) in artifact.files.enumerated() {
                if let problem = BundleFiles.pathProblem(path) { throw fail("field \"artifacts.\(name).files[\(i)]\" holds \"\(path)\", \(problem)") }
                guard m.files[path] != nil else { throw fail("field \"artifacts.\(name).files\" lists \"\(path)\", which \"files\" does not") }
            }
            // Every path a runner may open (ONNX graphs, Core ML packages and their files) is a listed file of
            // this artifact, or a directory holding some of them.
            for (field, value) in detailPaths(artifact.details, at: "artifacts.\(name).details") {
                guard let path = value.string else { throw fail("field \"\(field)\" must be a path string") }
                if let problem = BundleFiles.pathProblem(path) { throw fail("field \"\(field)\" holds \"\(path)\", \(problem)") }
                guard artifact.files.contains(path) || artifact.files.contains(where: { $0.hasPrefix(path + "/") }) else {
                    throw fail("field \"\(field)\" names \"\(path)\", which is not a file (or a directory of files) of \"artifacts.\(name).files\"")
                }
            }
        }
        for required in ["weights.safetensors", Golden.fileName] where m.files[required] == nil {
            throw fail("field \"files\" must list \(required)")
        }
        if let raw = m.itemFeaturesField {
            if let problem = ItemFeatures.problem(raw, files: m.files) { throw fail(problem) }
            m.itemFeatures = ItemFeatures(file: ItemFeatures.fileName, columns: ItemFeatures.integer(raw["columns"]!)!)
        }
        return m
    }
}
