package dev.privrec.core

/**
 * The bundle cannot be used. The message always starts with the bundle file it is about (for example
 * `weights.safetensors: sha256 ... differs from manifest.json files["weights.safetensors"].sha256 ...`),
 * so an app can show it and a developer knows which file to re-export.
 */
class BundleException(val file: String, detail: String) : RuntimeException("$file: $detail")
