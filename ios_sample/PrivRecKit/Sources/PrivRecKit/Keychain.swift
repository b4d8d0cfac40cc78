import CryptoKit
import Foundation
import Security

/// Where the store's AES key comes from. The app uses `KeychainKeyProvider`; tests may use another.
public protocol StoreKeyProvider: Sendable {
    /// The key, created on first use.
    func key() throws -> SymmetricKey
    /// Destroys the key: anything sealed with it becomes unreadable.
    func destroy() throws
}

/// A 256-bit key kept as a generic-password item in the Keychain, readable only on this device after the
/// first unlock, never synced to iCloud nor restored to another device.
public struct KeychainKeyProvider: StoreKeyProvider {
    public let service: String
    public let account: String

    public init(service: String = "dev.privrec.interaction-store", account: String = "aes-gcm-key") {
        self.service = service
        self.account = account
    }

    private var query: [String: Any] {
        [kSecClass as String: kSecClassGenericPassword,
         kSecAttrService as String: service,
         kSecAttrAccount as String: account]
    }

    public func key() throws -> SymmetricKey {
        var lookup = query
        lookup[kSecReturnData as String] = true
        lookup[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(lookup as CFDictionary, &item)
        if status == errSecSuccess, let data = item as? Data, data.count == 32 {
            return SymmetricKey(data: data)
        }
        guard status == errSecItemNotFound else {
            throw PrivRecError.store("Keychain read failed (OSStatus \(status))")
        }
        let key = SymmetricKey(size: .bits256)
        var add = query
        add[kSecValueData as String] = key.withUnsafeBytes { Data($0) }
        add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let added = SecItemAdd(add as CFDictionary, nil)
        guard added == errSecSuccess else { throw PrivRecError.store("Keychain write failed (OSStatus \(added))") }
        return key
    }

    public func destroy() throws {
        let status = SecItemDelete(query as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw PrivRecError.store("Keychain delete failed (OSStatus \(status))")
        }
    }
}
