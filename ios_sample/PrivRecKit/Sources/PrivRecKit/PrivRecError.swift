import Foundation

/// Why PrivRecKit refused a bundle or an operation. Bundle errors always name the file (and field).
public enum PrivRecError: Error, Equatable, LocalizedError {
    /// The bundle cannot be used: `file` is the bundle file (`manifest.json`, `weights.safetensors`, ...).
    case bundle(file: String, detail: String)
    /// A Core ML model returned something the contract does not allow.
    case model(signature: String, detail: String)
    /// The encrypted store could not be read or written.
    case store(String)
    /// An argument is out of range (an item row outside the catalog, an empty history): the constraint,
    /// then the value found.
    case invalidInput(String)

    public var errorDescription: String? {
        switch self {
        case let .bundle(file, detail): return "\(file): \(detail)"
        case let .model(signature, detail): return "Core ML \(signature): \(detail)"
        case let .store(detail): return "interaction store: \(detail)"
        case let .invalidInput(detail): return detail
        }
    }

    /// The bundle file an error is about, if any.
    public var file: String? {
        if case let .bundle(file, _) = self { return file }
        return nil
    }
}
