import Foundation
import PrivRecKit

/// The app's state: a `PrivRecSession` (verified bundle, Core ML models, encrypted store) and what the
/// screens show. All model work happens on the session actor, off the main thread.
@MainActor
final class AppModel: ObservableObject {
    @Published var recommendations: [Recommendation] = []
    @Published var liked: [LikedItem] = []
    @Published var selfTest: [SelfTestResult] = []
    @Published var manifest: Manifest?
    @Published var lastLoss: Float?
    /// The app cannot serve at all (no bundle, a refused bundle, a model that fails its self-test).
    @Published var error: String?
    /// The last like, unlike or "forget" failed (storage, Keychain or Core ML): shown above the list.
    @Published var notice: String?
    @Published var busy = true

    private var session: PrivRecSession?

    func start() async {
        guard session == nil else { return }
        do {
            // SwiftPM puts the target's resources (the copied bundle folder) in Bundle.module.
            guard let bundleURL = Bundle.module.url(forResource: "PrivRecBundle", withExtension: nil) else {
                throw PrivRecError.bundle(file: Manifest.fileName, detail: "the app has no PrivRecBundle folder")
            }
            let storeURL = try FileManager.default
                .url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
                .appendingPathComponent("PrivRec/interactions.bin")
            let session = try await PrivRecSession(bundleDirectory: bundleURL, storeURL: storeURL)
            self.session = session
            manifest = await session.manifest
            selfTest = await session.selfTest
            try await refresh()
        } catch {
            self.error = error.localizedDescription
        }
        busy = false
    }

    private func refresh() async throws {
        guard let session else { return }
        recommendations = try await session.recommendations()
        liked = await session.liked
    }

    /// Runs one change of the user's history; a failure leaves the previous state and shows `notice`.
    private func change(_ what: String, _ body: (PrivRecSession) async throws -> Void) async {
        guard let session, !busy else { return }
        busy = true
        defer { busy = false }
        do {
            try await body(session)
            notice = nil
            try await refresh()
        } catch {
            notice = "\(what): \(error.localizedDescription)"
        }
    }

    /// Tap to like: the user vector is rebuilt on the device from the whole history, then the list refreshes.
    func like(_ item: Recommendation) async {
        await change("Could not save your like") { lastLoss = try await $0.like(item.id) }
    }

    /// Tap a liked item to unlike it: removed from the history, the vector rebuilt the same way.
    func unlike(_ item: LikedItem) async {
        await change("Could not remove your like") { lastLoss = try await $0.unlike(item.id) }
    }

    func forget() async {
        await change("Could not erase your likes") {
            try await $0.forget()
            lastLoss = nil
        }
    }
}
