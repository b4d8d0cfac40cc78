import Foundation
import XCTest
@testable import PrivRecKit

/// `Manifest.parse` on hand-made manifests (no exported bundle needed): the optional `item_features` field,
/// checked as privrec/export/manifest.py `load_item_features` and the Kotlin core (`ItemFeaturesTest`) check it.
final class ManifestTests: XCTestCase {
    private let featuresFile = "item_features.safetensors"

    /// A `files` entry (the hashes are not checked by a parse).
    private func entry(_ digit: Character) -> [String: Any] { ["sha256": String(repeating: digit, count: 64), "size": 0] }

    /// A valid schema-1 manifest of 3 items × 2 dims, top-1, listing `item_features.safetensors`.
    private func manifest(itemFeatures: Any?, listFeatures: Bool = true) -> [String: Any] {
        let (dim, numItems, topK) = (2, 3, 1)
        func t(_ name: String, _ dtype: String, _ size: Int) -> [String: Any] { ["name": name, "dtype": dtype, "shape": [size]] }
        var files: [String: Any] = [
            "weights.safetensors": entry("0"),
            "golden.json": entry("1"),
        ]
        if listFeatures { files[featuresFile] = entry("2") }
        var doc: [String: Any] = [
            "schema_version": 1, "model_version": "test", "privrec_version": "0",
            "dim": dim, "num_items": numItems, "precision": "float32", "sparsity": 0.0, "top_k": topK,
            "finetune": ["steps": 2, "lr": 0.5, "l2": 0.01] as [String: Any],
            "items": [] as [Any],
            "weights": [
                "item_embedding": ["dtype": "float32", "shape": [numItems, dim]] as [String: Any],
                "item_bias": ["dtype": "float32", "shape": [numItems]] as [String: Any],
            ],
            "signatures": [
                "score": ["inputs": [t("user", "float32", dim), t("item_ids", "int32", -1)],
                          "outputs": [t("scores", "float32", -1)]],
                "recommend": ["inputs": [t("user", "float32", dim), t("mask", "float32", numItems)],
                              "outputs": [t("top_ids", "int32", topK), t("top_scores", "float32", topK)]],
                "finetune": ["inputs": [t("user", "float32", dim), t("item_ids", "int32", -1), t("labels", "float32", -1),
                                        t("lr", "float32", 1), t("l2", "float32", 1)],
                             "outputs": [t("user_out", "float32", dim), t("loss", "float32", 1)]],
            ],
            "artifacts": [:] as [String: Any],
            "files": files,
            "privacy": ["mode": "none", "ledger": [] as [Any]] as [String: Any],
        ]
        if let itemFeatures { doc["item_features"] = itemFeatures }
        return doc
    }

    /// An `item_features` field `{"file": file, "columns": columns}`.
    private func features(_ file: Any, _ columns: Any) -> [String: Any] { ["file": file, "columns": columns] }

    private func parse(_ doc: [String: Any]) throws -> Manifest {
        try Manifest.parse(try JSONSerialization.data(withJSONObject: doc))
    }

    private func assertRefused(_ doc: [String: Any], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(doc), file: file, line: line) { error in
            XCTAssertEqual((error as? PrivRecError)?.file, "manifest.json", file: file, line: line)
            let message = error.localizedDescription
            XCTAssertTrue(message.contains(fragment), "message <\(message)> lacks <\(fragment)>", file: file, line: line)
        }
    }

    func testAValidItemFeaturesFieldParses() throws {
        let m = try parse(manifest(itemFeatures: features(featuresFile, 3)))
        XCTAssertEqual(m.itemFeatures, Manifest.ItemFeatures(file: featuresFile, columns: 3))
        XCTAssertEqual(try parse(manifest(itemFeatures: ["columns": 1, "file": featuresFile] as [String: Any])).itemFeatures?.columns, 1)
        // Optional: absent or null means the bundle ships no item features (as in the Python reader).
        XCTAssertNil(try parse(manifest(itemFeatures: nil)).itemFeatures)
        XCTAssertNil(try parse(manifest(itemFeatures: NSNull())).itemFeatures)
    }

    func testInvalidItemFeaturesFieldsAreRefusedNamingTheField() {
        assertRefused(manifest(itemFeatures: ["file": featuresFile, "columns": 3, "dtype": "float32"] as [String: Any]),
                      "manifest.json: keys at \"item_features\" differ from the schema: unexpected [\"dtype\"], missing []")
        assertRefused(manifest(itemFeatures: ["file": featuresFile]),
                      "manifest.json: keys at \"item_features\" differ from the schema: unexpected [], missing [\"columns\"]")
        assertRefused(manifest(itemFeatures: featuresFile),
                      "manifest.json: field \"item_features\" must be an object {\"file\", \"columns\"}. Found \"\(featuresFile)\".")

        // The file name is fixed, and the file must be listed in `files` (so its SHA-256 is checked).
        var renamed = manifest(itemFeatures: features("features.safetensors", 3))
        var files = renamed["files"] as! [String: Any]
        files["features.safetensors"] = entry("3")
        renamed["files"] = files
        assertRefused(renamed, "manifest.json: field \"item_features.file\" must be \"item_features.safetensors\", listed in \"files\". Found \"features.safetensors\".")
        assertRefused(manifest(itemFeatures: features(7, 3)),
                      "manifest.json: field \"item_features.file\" must be \"item_features.safetensors\", listed in \"files\". Found 7.")
        assertRefused(manifest(itemFeatures: features(featuresFile, 3), listFeatures: false),
                      "manifest.json: field \"item_features.file\" must be \"item_features.safetensors\", listed in \"files\". Found \"\(featuresFile)\".")

        // `columns` is an integer >= 1: not 0, negative, a string, a fraction, a boolean or null.
        let invalidColumns: [(Any, String)] = [(0, "0"), (-2, "-2"), ("3", "\"3\""), (1.5, "1.5"), (true, "true"), (NSNull(), "null")]
        for (columns, shown) in invalidColumns {
            assertRefused(manifest(itemFeatures: features(featuresFile, columns)),
                          "manifest.json: field \"item_features.columns\" must be an integer >= 1. Found \(shown).")
        }
    }

    func testAManifestWithoutItemFeaturesStillParses() throws {
        let m = try parse(manifest(itemFeatures: nil, listFeatures: false))
        XCTAssertNil(m.itemFeatures)
        XCTAssertEqual(m.numItems, 3)
        XCTAssertEqual(m.finetune.calls, 1)
    }
}
