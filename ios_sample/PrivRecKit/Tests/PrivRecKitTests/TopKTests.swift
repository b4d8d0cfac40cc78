import XCTest
@testable import PrivRecKit

final class TopKTests: XCTestCase {
    func testHighestFirstWithLowerIndexWinningTies() {
        let scores: [Float] = [1, 3, 3, 2, 3, .nan, 0]
        XCTAssertEqual(TopK.select(scores, k: 4), [1, 2, 4, 3])
    }

    func testExcludedAndMaskedItemsNeverAppear() {
        let scores: [Float] = [5, 4, -.infinity, 3, 2]
        XCTAssertEqual(TopK.select(scores, k: 3, excluding: [0]), [1, 3, 4])
        XCTAssertEqual(TopK.select(scores, k: 10, excluding: [0]), [1, 3, 4])  // fewer eligible than k
    }

    func testMatchesAFullSortOnRandomScores() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let n = Int.random(in: 1...200, using: &rng)
            let scores = (0..<n).map { _ in Float(Int.random(in: 0..<20, using: &rng)) }  // many ties
            let excluded = Set((0..<n).filter { _ in Int.random(in: 0..<5, using: &rng) == 0 })
            let k = Int.random(in: 1...15, using: &rng)
            let expected = (0..<n).filter { !excluded.contains($0) }
                .sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
                .prefix(k)
            XCTAssertEqual(TopK.select(scores, k: k, excluding: excluded), Array(expected))
        }
    }
}
