// swift-tools-version: 5.9
// The PrivRec demo app: an Xcode app package. Open this folder (PrivRecDemo.swiftpm) in Xcode 15+.
import AppleProductTypes
import PackageDescription

let package = Package(
    name: "PrivRecDemo",
    platforms: [.iOS("16.0")],
    products: [
        .iOSApplication(
            name: "PrivRecDemo",
            targets: ["AppModule"],
            bundleIdentifier: "dev.privrec.demo",
            teamIdentifier: "",
            displayVersion: "0.1.0",
            bundleVersion: "1",
            appIcon: .placeholder(icon: .star),
            accentColor: .presetColor(.indigo),
            supportedDeviceFamilies: [.phone, .pad],
            supportedInterfaceOrientations: [.portrait, .landscapeLeft, .landscapeRight]
        ),
    ],
    dependencies: [
        .package(path: "../PrivRecKit"),
    ],
    targets: [
        .executableTarget(
            name: "AppModule",
            dependencies: [.product(name: "PrivRecKit", package: "PrivRecKit")],
            path: "Sources",
            // The bundle is copied byte for byte (not compiled by Xcode), so manifest.sig and the sha256s in
            // its manifest still match on the device; PrivRecKit compiles the .mlpackage files at first launch.
            // privrec_signing_key.pub is the publisher's public key the app pins (empty until you copy yours).
            resources: [.copy("PrivRecBundle"), .copy("privrec_signing_key.pub")]
        ),
    ]
)
