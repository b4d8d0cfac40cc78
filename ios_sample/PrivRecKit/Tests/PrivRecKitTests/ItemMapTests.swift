import XCTest
@testable import PrivRecKit

/// The item map a device maps its stored history (item ids) through: a catalog update keeps the surviving
/// items in order and reports the removed ones; a map with an empty or repeated id is refused.
final class ItemMapTests: XCTestCase {
    func testACatalogUpdateKeepsTheSurvivingHistoryInOrder() throws {
        var state = UserState(modelVersion: "v1", dim: 2)
        state.interactions = ["a", "b", "c", "b", "d"].enumerated().map {
            Interaction(itemId: $0.element, label: Float($0.offset + 1), timeMs: 1_700_000_000_000 + Int64($0.offset))
        }
        let v1 = try ItemMap(ids: ["a", "b", "c", "d"])
        let v2 = try ItemMap(ids: ["e", "d", "b", "a"])  // c removed, e added, rows re-ordered
        XCTAssertEqual(try state.history(in: v1).rows, [0, 1, 2, 1, 3])
        let mapped = try state.history(in: v2)
        XCTAssertEqual(mapped.rows, [3, 2, 2, 1])
        XCTAssertEqual(mapped.weights, [1, 2, 4, 5])
        XCTAssertEqual(mapped.dropped, ["c"])
        XCTAssertEqual(state.seen(in: v2), [1, 2, 3])
    }

    func testTheImplicitMapIsTheRowNumber() {
        XCTAssertEqual(ItemMap.implicit(3).ids, ["0", "1", "2"])
        XCTAssertFalse(ItemMap.implicit(3).explicit)
        XCTAssertEqual(ItemMap.implicit(3).row("2"), 2)
        XCTAssertNil(ItemMap.implicit(3).row("3"))
    }

    func testAnEmptyOrRepeatedIdIsRefused() {
        XCTAssertThrowsError(try ItemMap(ids: ["a", "b", "a"])) { error in
            XCTAssertEqual(error as? PrivRecError, .invalidInput("item ids must be unique. Found \"a\" at rows 0 and 2."))
        }
        XCTAssertThrowsError(try ItemMap(ids: ["a", ""])) { error in
            XCTAssertEqual(error as? PrivRecError, .invalidInput("item ids must be non-empty. Found \"\" at row 1."))
        }
    }
}
