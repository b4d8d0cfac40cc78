import CoreML
import Foundation

/// The bundle's Core ML models behind typed Swift calls (`score`, `recommend`, `finetune`; docs/BUNDLE.md).
///
/// The exporter (export/coreml.py) writes, per deployment target, a "variant" in
/// `artifacts.coreml.details.variants`: by default only iOS18, one multifunction package
/// (`Recommender.mlpackage`, functions `score`, `recommend`, `finetune` over one copy of the weights,
/// float32 / int8 / int4, sparse when pruned), loaded once per function with
/// `MLModelConfiguration.functionName`; with `privrec export --coreml-ios16` also iOS16, three
/// single-function packages (`RecommenderScore/Recommend/Finetune.mlpackage`, function `main`) for
/// iOS 16-17. This class picks iOS18 when the OS has it, the bundle offers it and the app was built with
/// Xcode 16+ (the iOS 18 SDK), else iOS16; a bundle without a variant this device can run is refused
/// with a message saying how to export one.
/// Packages are compiled on the device (`MLModel.compileModel(at:)`) from the verified `.mlpackage`
/// files, once per model version. Runs on the CPU by default so float32 results match the golden
/// tolerance (the Neural Engine computes in float16).
public final class CoreMLSignatures: RecommenderSignatures {
    public static let signatureNames = ["score", "recommend", "finetune"]

    public let deploymentTarget: String
    private let models: [String: MLModel]
    private let dim: Int
    private let topK: Int

    private init(models: [String: MLModel], deploymentTarget: String, dim: Int, topK: Int) {
        self.models = models
        self.deploymentTarget = deploymentTarget
        self.dim = dim
        self.topK = topK
    }

    /// Compiles (or reuses the compiled copy of) and loads the three signatures' models.
    public static func load(bundle: PrivRecBundle, computeUnits: MLComputeUnits = .cpuOnly,
                            cacheDirectory: URL? = nil) async throws -> CoreMLSignatures {
        let m = bundle.manifest
        guard let details = m.artifacts["coreml"]?.details, let variants = details["variants"]?.object else {
            throw PrivRecError.bundle(file: Manifest.fileName, detail: "field \"artifacts.coreml.details.variants\" is missing: export with --formats coreml")
        }
        var target = "iOS16"
        #if compiler(>=6.0)  // Xcode 16+: the iOS 18 SDK has MLModelConfiguration.functionName
        if #available(iOS 18.0, macOS 15.0, *), variants["iOS18"] != nil { target = "iOS18" }
        #endif
        guard variants[target] != nil else {
            throw PrivRecError.bundle(file: Manifest.fileName, detail: "the Core ML artifact holds only \(variants.keys.sorted()) and this device needs \(target): export with --coreml-ios16 for iOS 16-17 (float32 or int8)")
        }
        guard let variant = variants[target], let packages = variant["packages"]?.object,
              let functions = variant["functions"]?.object else {
            throw PrivRecError.bundle(file: Manifest.fileName, detail: "field \"artifacts.coreml.details.variants.\(target)\" lacks packages/functions")
        }
        let cache = try cacheDirectory ?? FileManager.default
            .url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("PrivRecKit/compiled/\(m.modelVersion.replacingOccurrences(of: ":", with: "_"))")
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)

        var compiled: [String: URL] = [:]  // package -> compiled .mlmodelc (a multifunction package compiles once)
        var models: [String: MLModel] = [:]
        for sig in signatureNames {
            guard let package = packages[sig]?.string, let function = functions[sig]?.string else {
                throw PrivRecError.bundle(file: Manifest.fileName, detail: "variant \(target) has no package for \(sig)")
            }
            let modelc: URL
            if let done = compiled[package] {
                modelc = done
            } else {
                let destination = cache.appendingPathComponent((package as NSString).deletingPathExtension + ".mlmodelc")
                if !FileManager.default.fileExists(atPath: destination.path) {
                    let temporary = try await MLModel.compileModel(at: bundle.directory.appendingPathComponent(package))
                    try FileManager.default.moveItem(at: temporary, to: destination)
                }
                compiled[package] = destination
                modelc = destination
            }
            let config = MLModelConfiguration()
            config.computeUnits = computeUnits
            if function != "main" {
                #if compiler(>=6.0)
                guard #available(iOS 18.0, macOS 15.0, *) else {
                    throw PrivRecError.model(signature: sig, detail: "function \(function) needs iOS 18 (multifunction models)")
                }
                config.functionName = function
                #else
                throw PrivRecError.model(signature: sig, detail: "function \(function) needs the iOS 18 SDK (Xcode 16)")
                #endif
            }
            models[sig] = try await MLModel.load(contentsOf: modelc, configuration: config)
        }
        return CoreMLSignatures(models: models, deploymentTarget: target, dim: m.dim, topK: m.topK)
    }

    // MARK: typed calls

    private func array<T: MLShapedArrayScalar>(_ values: [T]) -> MLMultiArray {
        MLMultiArray(MLShapedArray<T>(scalars: values, shape: [values.count]))
    }

    private func predict(_ sig: String, _ inputs: [String: MLMultiArray]) throws -> MLFeatureProvider {
        let provider = try MLDictionaryFeatureProvider(dictionary: inputs.mapValues { MLFeatureValue(multiArray: $0) })
        return try models[sig]!.prediction(from: provider)
    }

    private func output<T: MLShapedArrayScalar>(_ out: MLFeatureProvider, _ name: String, _ sig: String,
                                                as _: T.Type, count: Int? = nil) throws -> [T] {
        guard let value = out.featureValue(for: name)?.multiArrayValue else {
            throw PrivRecError.model(signature: sig, detail: "no output named \(name)")
        }
        let scalars = MLShapedArray<T>(converting: value).scalars
        if let count, scalars.count != count {
            throw PrivRecError.model(signature: sig, detail: "\(name) has \(scalars.count) values, expected \(count)")
        }
        return scalars
    }

    public func score(user: [Float], itemIds: [Int32]) throws -> [Float] {
        if itemIds.isEmpty { return [] }
        let out = try predict("score", ["user": array(user), "item_ids": array(itemIds)])
        return try output(out, "scores", "score", as: Float.self, count: itemIds.count)
    }

    public func recommend(user: [Float], mask: [Float]) throws -> (ids: [Int32], scores: [Float]) {
        let out = try predict("recommend", ["user": array(user), "mask": array(mask)])
        return (try output(out, "top_ids", "recommend", as: Int32.self, count: topK),
                try output(out, "top_scores", "recommend", as: Float.self, count: topK))
    }

    public func finetune(user: [Float], itemIds: [Int32], labels: [Float], lr: Float, l2: Float) throws -> (user: [Float], loss: Float) {
        let out = try predict("finetune", ["user": array(user), "item_ids": array(itemIds), "labels": array(labels),
                                           "lr": array([lr]), "l2": array([l2])])
        let loss = try output(out, "loss", "finetune", as: Float.self)
        guard loss.count == 1 else { throw PrivRecError.model(signature: "finetune", detail: "loss has \(loss.count) values") }
        return (try output(out, "user_out", "finetune", as: Float.self, count: dim), loss[0])
    }
}
