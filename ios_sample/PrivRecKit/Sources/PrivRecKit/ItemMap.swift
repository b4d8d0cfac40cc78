import Foundation

/// A history of the app's item ids mapped onto one bundle's rows: the rows and weights of the ids the bundle
/// holds, in history order (oldest first), and the ids it does not hold (`dropped`: removed by a catalog
/// update, or never in the catalog).
public struct MappedHistory: Equatable, Sendable {
    public let rows: [Int]
    public let weights: [Float]
    public let dropped: [String]
}

/// Row ↔ the app's own item id for one bundle: the manifest's item map (docs/BUNDLE.md, "Item map").
///
/// A device stores its history by item id, never by row: each bundle maps it onto its own rows, so after a
/// catalog update (a new bundle with items added, removed and re-ordered) every surviving item keeps its
/// place in the history and the removed ones are left out. A bundle without `items` has the implicit map
/// (`explicit` false): row `r` holds the item with id `String(r)`.
public struct ItemMap: Equatable, Sendable {
    /// `ids[row]`: the app's id of the item in that row.
    public let ids: [String]
    public let explicit: Bool
    private let rowOf: [String: Int]

    /// Throws `PrivRecError.invalidInput` for an empty or repeated id.
    public init(ids: [String], explicit: Bool = true) throws {
        var rowOf = [String: Int](minimumCapacity: ids.count)
        for (row, id) in ids.enumerated() {
            guard !id.isEmpty else { throw PrivRecError.invalidInput("item ids must be non-empty. Found \"\" at row \(row).") }
            if let before = rowOf.updateValue(row, forKey: id) {
                throw PrivRecError.invalidInput("item ids must be unique. Found \"\(id)\" at rows \(before) and \(row).")
            }
        }
        self.ids = ids
        self.explicit = explicit
        self.rowOf = rowOf
    }

    /// The map of a bundle without an item map: row `r` holds id `String(r)`.
    public static func implicit(_ numItems: Int) -> ItemMap {
        // Distinct non-empty decimal strings: the initializer cannot throw.
        return try! ItemMap(ids: (0..<numItems).map(String.init), explicit: false)
    }

    public var numItems: Int { ids.count }

    /// The row holding `id`, or nil when this catalog does not hold it.
    public func row(_ id: String) -> Int? { rowOf[id] }

    /// Maps `history` (item ids, oldest first) and its optional `weights` (default 1) onto this map's rows.
    public func map(_ history: [String], weights: [Float]? = nil) throws -> MappedHistory {
        if let w = weights, w.count != history.count {
            throw PrivRecError.invalidInput("`weights` must have one weight per item id (\(history.count)). Found \(w.count).")
        }
        var rows: [Int] = []
        var kept: [Float] = []
        var dropped: [String] = []
        for (pos, id) in history.enumerated() {
            if let row = rowOf[id] {
                rows.append(row)
                kept.append(weights?[pos] ?? 1)
            } else {
                dropped.append(id)
            }
        }
        return MappedHistory(rows: rows, weights: kept, dropped: dropped)
    }
}
