import CryptoKit
import Foundation
import PrivRecKit

/// Why the app has no usable pinned key: every bundle is then refused.
enum PinnedKeyError: Error, LocalizedError {
    case missing
    case invalid(String)

    var errorDescription: String? {
        switch self {
        case .missing:
            return "this app pins no public key, so no bundle can be trusted: copy keys/privrec_signing_key.pub "
                + "(from `privrec keys generate`) over Sources/\(PinnedKey.resourceName).\(PinnedKey.resourceExtension) "
                + "and rebuild (ios_sample/README.md)."
        case let .invalid(detail):
            return "the pinned public key (Sources/\(PinnedKey.resourceName).\(PinnedKey.resourceExtension)) is not usable: \(detail)"
        }
    }
}

/// The publisher's Ed25519 public key, pinned in the app: the one line of base64 that `privrec keys generate`
/// writes to `privrec_signing_key.pub`, shipped as the resource `Sources/privrec_signing_key.pub`
/// (Package.swift copies it into the app). The committed file is empty: until the developer copies their
/// key over it, every bundle is refused. It ships inside the app, never with the bundle it checks.
enum PinnedKey {
    static let resourceName = "privrec_signing_key"
    static let resourceExtension = "pub"

    static func load() throws -> Curve25519.Signing.PublicKey {
        guard let url = Bundle.module.url(forResource: resourceName, withExtension: resourceExtension),
              let text = try? String(contentsOf: url, encoding: .utf8),
              !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw PinnedKeyError.missing
        }
        do {
            return try BundleSignature.publicKey(base64: text)
        } catch {
            throw PinnedKeyError.invalid(error.localizedDescription)
        }
    }
}

/// The app's state: a `PrivRecSession` (bundle verified against the pinned key, Core ML models, encrypted
/// store) and what the screens show. All model work happens on the session actor, off the main thread.
@MainActor
final class AppModel: ObservableObject {
    @Published var recommendations: [Recommendation] = []
    @Published var liked: [LikedItem] = []
    @Published var selfTest: [SelfTestResult] = []
    @Published var manifest: Manifest?
    @Published var lastLoss: Float?
    /// The app cannot serve at all (no bundle, no pinned key, a refused bundle: unsigned, signed by another
    /// key, tampered; a model that fails its self-test).
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
            // manifest.sig must be this key's signature of manifest.json: an unsigned bundle, one signed by
            // another key or a manifest changed after signing is refused before any other file is read.
            let publicKey = try PinnedKey.load()
            let session = try await PrivRecSession(bundleDirectory: bundleURL, publicKey: publicKey, storeURL: storeURL)
            self.session = session
            manifest = await session.manifest
            selfTest = await session.selfTest
            try await refresh()
        } catch let refusal as PinnedKeyError {
            self.error = "Bundle refused: \(refusal.localizedDescription)"
        } catch let refusal as PrivRecError where refusal.file != nil {
            // Unsigned, signed by another key, tampered, corrupt or malformed: nothing is served.
            self.error = "Bundle refused: \(refusal.localizedDescription)"
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
