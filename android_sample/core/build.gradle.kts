// Pure-Kotlin core: no Android dependency, so it runs on the JVM (and is compiled and tested on Linux
// by tests/samples/test_android_core.py with the Debian Kotlin 1.3 compiler; keep it to 1.3 features).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // ./gradlew :core:test -Pprivrec.bundles=/path/to/bundle  (several separated by ':'); without the
    // property the tests read the PRIVREC_BUNDLES environment variable.
    providers.gradleProperty("privrec.bundles").orNull?.let { systemProperty("privrec.bundles", it) }
    // The reconstruction recipe's golden fixture, shared with the Python SDK and the iOS package.
    systemProperty(
        "privrec.recipe_golden",
        providers.gradleProperty("privrec.recipe_golden")
            .getOrElse(rootProject.file("../tests/golden/reconstruction_recipe.json").absolutePath)
    )
    testLogging { events("passed", "failed"); showStandardStreams = true }
}
