import Foundation

/// `manifest.json`, schema version 1 (docs/BUNDLE.md).
public struct Manifest: Decodable, Sendable {
    public static let fileName = "manifest.json"
    public static let schemaVersion = 1

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

    public struct Finetune: Codable, Equatable, Sendable {
        public let steps: Int
        public let lr: Double
        public let l2: Double
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

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", modelVersion = "model_version", privrecVersion = "privrec_version"
        case dim, numItems = "num_items", precision, sparsity, topK = "top_k", finetune, items, weights
        case signatures, artifacts, files, privacy
    }

    /// Title of model row `index` (`"#index"` when the catalog has none).
    public func title(_ index: Int) -> String {
        if index >= 0, index < items.count, items[index].index == index, !items[index].title.isEmpty {
            return items[index].title
        }
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

    /// The signatures every artifact must expose (DESIGN §7) for this model's size.
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

    /// Decodes and checks the manifest; errors name `manifest.json` and the field.
    public static func parse(_ data: Data) throws -> Manifest {
        func fail(_ detail: String) -> PrivRecError { .bundle(file: fileName, detail: detail) }
        // Check the version before the rest, so a newer schema gets a clear message, not a decoding error.
        struct Version: Decodable { let schema_version: Int? }
        let version = (try? JSONDecoder().decode(Version.self, from: data))?.schema_version
        guard version == schemaVersion else {
            throw fail("field \"schema_version\" is \(version.map(String.init) ?? "missing"); this reader knows \(schemaVersion) only")
        }
        let m: Manifest
        do {
            m = try JSONDecoder().decode(Manifest.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw fail("field \"\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))\" is missing")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw fail("field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw fail("is not a valid manifest (\(error))")
        }
        guard ["float32", "int8"].contains(m.precision) else { throw fail("field \"precision\" must be float32 or int8. Found \(m.precision).") }
        guard m.dim > 0, m.numItems > 0, (1...m.numItems).contains(m.topK) else {
            throw fail("fields \"dim\", \"num_items\", \"top_k\" must be positive with top_k <= num_items")
        }
        guard m.items.isEmpty || m.items.count == m.numItems else {
            throw fail("field \"items\" must be empty or hold \(m.numItems) entries. Found \(m.items.count).")
        }
        for (pos, item) in m.items.enumerated() where item.index != pos {
            throw fail("field \"items[\(pos)].index\" must be \(pos). Found \(item.index).")
        }
        for (name, expected) in m.expectedSignatures() where m.signatures[name] != expected {
            throw fail("field \"signatures.\(name)\" differs from docs/BUNDLE.md")
        }
        for path in m.files.keys {
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !path.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                throw fail("field \"files\" holds \"\(path)\", which is not a relative path inside the bundle")
            }
        }
        for required in ["weights.safetensors", Golden.fileName] where m.files[required] == nil {
            throw fail("field \"files\" must list \(required)")
        }
        return m
    }
}
