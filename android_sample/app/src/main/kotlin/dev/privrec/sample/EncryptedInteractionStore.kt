package dev.privrec.sample

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import dev.privrec.core.InteractionLog
import dev.privrec.core.Manifest
import java.io.File
import java.security.KeyStore
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * The user's interactions and user vector, sealed with AES-256-GCM under a key that lives in the Android
 * Keystore (hardware-backed where the device has it; the key material never enters the app process).
 *
 * File layout: 12-byte IV (chosen by the Keystore cipher on every write) ‖ ciphertext ‖ 16-byte tag.
 * The associated data binds the file to its purpose, so a blob sealed for another use fails to open.
 * Writes go to a temporary file and are renamed into place, so a crash never leaves half a file.
 */
class EncryptedInteractionStore(private val file: File, private val keyAlias: String = "privrec.interactions") {

    private fun key(): SecretKey {
        val keyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }
        (keyStore.getEntry(keyAlias, null) as? KeyStore.SecretKeyEntry)?.let { return it.secretKey }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, KEYSTORE)
        generator.init(
            KeyGenParameterSpec.Builder(keyAlias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                .setRandomizedEncryptionRequired(true) // the Keystore picks a fresh IV per encryption
                .build()
        )
        return generator.generateKey()
    }

    /**
     * The stored log, or null when there is none yet. Throws [AEADBadTagException] if the file was altered.
     * A log of the earlier format (model rows) is converted to item ids when [rowsBundle] is the bundle it
     * was written with (see [InteractionLog.decode]).
     */
    fun read(rowsBundle: Manifest? = null): InteractionLog? {
        if (!file.isFile) return null
        val blob = file.readBytes()
        require(blob.size > IV_BYTES + TAG_BITS / 8) { "${file.name} is truncated (${blob.size} bytes)" }
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, key(), GCMParameterSpec(TAG_BITS, blob, 0, IV_BYTES))
        cipher.updateAAD(AAD)
        return InteractionLog.decode(cipher.doFinal(blob, IV_BYTES, blob.size - IV_BYTES), rowsBundle)
    }

    fun write(log: InteractionLog) {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, key())
        cipher.updateAAD(AAD)
        val sealed = cipher.doFinal(log.encode())
        val iv = cipher.iv
        check(iv.size == IV_BYTES) { "unexpected GCM IV length ${iv.size}" }
        val tmp = File(file.parentFile, "${file.name}.tmp")
        tmp.writeBytes(iv + sealed)
        check(tmp.renameTo(file)) { "could not replace ${file.name}" }
    }

    /** Forget everything: the file and the key (the ciphertext is unreadable even if a copy survives). */
    fun erase() {
        file.delete()
        KeyStore.getInstance(KEYSTORE).apply { load(null) }.deleteEntry(keyAlias)
    }

    private companion object {
        const val KEYSTORE = "AndroidKeyStore"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BITS = 128
        val AAD = "privrec interaction store v1".toByteArray(Charsets.UTF_8)
    }
}
