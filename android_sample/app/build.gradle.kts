plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.compose")
}

// The publisher's Ed25519 public key, pinned in the app as BuildConfig.PRIVREC_PUBLIC_KEY: the one line of
// base64 that `privrec keys generate --out keys` writes to keys/privrec_signing_key.pub (README, "Signed
// bundles"). Set either Gradle property, e.g. in android_sample/gradle.properties, ~/.gradle/gradle.properties
// or on the command line:
//   privrec.publicKey=<the .pub file's content>
//   privrec.publicKeyFile=<path to the .pub file, relative to android_sample/ or absolute>
// Unset, the app builds but refuses every bundle and says why. Never point it at a key fetched with a bundle.
val privrecPublicKey: String = run {
    val text = providers.gradleProperty("privrec.publicKey").orNull
    val file = providers.gradleProperty("privrec.publicKeyFile").orNull
    when {
        !text.isNullOrBlank() -> text
        !file.isNullOrBlank() -> rootProject.file(file).readText()
        else -> ""
    }.trim()
}
if (privrecPublicKey.isEmpty()) {
    logger.warn("privrec: no privrec.publicKey / privrec.publicKeyFile set: this build pins no key and refuses every bundle")
}

android {
    namespace = "dev.privrec.sample"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.privrec.sample"
        minSdk = 26 // Android Keystore AES-GCM keys need API 23; LiteRT 1.4 needs 21
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        // Escaped into a Java string literal; a malformed key still compiles and is refused at start-up.
        val escaped = privrecPublicKey.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\r", "\\r")
        buildConfigField("String", "PRIVREC_PUBLIC_KEY", "\"$escaped\"")
    }

    buildFeatures {
        compose = true
        buildConfig = true // BuildConfig.PRIVREC_PUBLIC_KEY
    }

    // The bundle goes into src/main/assets/bundle/ (see README). Keep the model uncompressed so the
    // interpreter can memory-map it, and never let aapt drop files the manifest hashes.
    androidResources {
        noCompress += listOf("tflite", "safetensors")
        ignoreAssetsPattern = "!.svn:!.git:!.ds_store:!*.scc:!CVS:!thumbs.db:!picasa.ini:!*~"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":core"))
    implementation("com.google.ai.edge.litert:litert:1.4.2") // org.tensorflow.lite.Interpreter
    // Ed25519 verification of manifest.sig on every Android release (Ed25519Provider.kt).
    implementation("org.bouncycastle:bcprov-jdk18on:1.79")

    implementation(platform("androidx.compose:compose-bom:2024.12.01"))
    implementation("androidx.compose.material3:material3")
    implementation("androidx.compose.ui:ui")
    implementation("androidx.activity:activity-compose:1.9.3")
    implementation("androidx.lifecycle:lifecycle-viewmodel-compose:2.8.7")
    implementation("androidx.lifecycle:lifecycle-runtime-compose:2.8.7")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
