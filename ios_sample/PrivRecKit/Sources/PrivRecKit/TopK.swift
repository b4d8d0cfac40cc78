/// Top-K selection with exclusions, for when the app needs more than the `recommend` signature's fixed K
/// (it then scores the catalog with `score` and selects here).
public enum TopK {
    /// Indices of the `k` highest `scores`, highest first, skipping `excluded` and NaN / -inf scores;
    /// ties go to the lower index (the rule of the Python reference and of TFLite's TOPK_V2).
    /// O(n log k) with a bounded min-heap.
    public static func select(_ scores: [Float], k: Int, excluding excluded: Set<Int> = []) -> [Int] {
        precondition(k > 0, "k must be > 0")
        // `worse(a, b)`: a ranks below b.
        func worse(_ a: Int, _ b: Int) -> Bool { scores[a] < scores[b] || (scores[a] == scores[b] && a > b) }
        var heap: [Int] = []  // min-heap by rank: heap[0] is the worst kept index
        heap.reserveCapacity(k)

        func siftUp(_ start: Int) {
            var i = start
            while i > 0 {
                let parent = (i - 1) / 2
                guard worse(heap[i], heap[parent]) else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, worse(heap[l], heap[m]) { m = l }
                if r < heap.count, worse(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }

        for i in scores.indices where !excluded.contains(i) && !scores[i].isNaN && scores[i] != -.infinity {
            if heap.count < k {
                heap.append(i)
                siftUp(heap.count - 1)
            } else if worse(heap[0], i) {
                heap[0] = i
                siftDown(0)
            }
        }
        return heap.sorted { worse($1, $0) }
    }
}
