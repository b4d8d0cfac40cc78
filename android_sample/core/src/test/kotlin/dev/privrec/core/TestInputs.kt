package dev.privrec.core

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
}
