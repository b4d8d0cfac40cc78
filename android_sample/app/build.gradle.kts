plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.compose")
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
    }

    buildFeatures { compose = true }

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

    implementation(platform("androidx.compose:compose-bom:2024.12.01"))
    implementation("androidx.compose.material3:material3")
    implementation("androidx.compose.ui:ui")
    implementation("androidx.activity:activity-compose:1.9.3")
    implementation("androidx.lifecycle:lifecycle-viewmodel-compose:2.8.7")
    implementation("androidx.lifecycle:lifecycle-runtime-compose:2.8.7")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
