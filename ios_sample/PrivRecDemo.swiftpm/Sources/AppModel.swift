import Foundation
import PrivRecKit

/// The app's state: a `PrivRecSession` (verified bundle, Core ML models, encrypted store) and what the
/// screens show. All model work happens on the session actor, off the main thread.
@MainActor
final class AppModel: ObservableObject {
    @Published var recommendations: [Recommendation] = []
    @Published var liked: [String] = []
    @Published var selfTest: [SelfTestResult] = []
    @Published var manifest: Manifest?
    @Published var lastLoss: Float?
    @Published var error: String?
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
        liked = await session.likedTitles
    }

    /// Tap to like: fine-tune on the device, then show the refreshed list.
    func like(_ item: Recommendation) async {
        guard let session, !busy else { return }
        busy = true
        defer { busy = false }
        do {
            lastLoss = try await session.like(item.id)
            try await refresh()
        } catch {
            self.error = error.localizedDescription
        }
    }

    func forget() async {
        guard let session else { return }
        do {
            try await session.forget()
            lastLoss = nil
            try await refresh()
        } catch {
            self.error = error.localizedDescription
        }
    }
}
