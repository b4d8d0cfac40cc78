package dev.privrec.core

import java.io.File

/**
 * Inputs the test run passes in (tests/samples/test_android_core.py, or Gradle's `:core:test`): a JVM system
 * property, or the environment variable when the property is unset or empty (Gradle may pass an empty one).
 * Missing both fails the test; it never skips.
 */
object TestInputs {
    fun value(property: String, env: String, what: String): String {
        val prop = System.getProperty(property)
        val raw = if (prop != null && prop.isNotEmpty()) prop else System.getenv(env)
        if (raw == null || raw.length == 0) throw AssertionError("set -D$property=... or the environment variable $env to $what")
        return raw
    }

    /** The bundle directories (`privrec.bundles` / `PRIVREC_BUNDLES`, separated by the path separator). */
    fun bundleDirs(): List<File> {
        val raw = value("privrec.bundles", "PRIVREC_BUNDLES", "DIR[${File.pathSeparator}DIR...], bundles written by `privrec export`")
        val dirs = raw.split(File.pathSeparator).filter { it.isNotEmpty() }.map { File(it) }
        if (dirs.isEmpty()) throw AssertionError("privrec.bundles names no directory")
        return dirs
    }

    /**
     * The publisher's public key the bundles were signed with: the file `privrec keys generate` writes
     * (`privrec.public_key` / `PRIVREC_PUBLIC_KEY`), as the app would pin it.
     */
    fun publicKey(): BundlePublicKey =
        BundlePublicKey.fromBase64(File(value("privrec.public_key", "PRIVREC_PUBLIC_KEY", "the bundles' public key file (privrec_signing_key.pub)")).readText())
}
