// swift-tools-version: 5.9
// PrivRecKit: load a privrec bundle, verify it, run its Core ML models, keep the user's data encrypted.
import PackageDescription

let package = Package(
    name: "PrivRecKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "PrivRecKit", targets: ["PrivRecKit"]),
    ],
    targets: [
        .target(name: "PrivRecKit"),
        .testTarget(name: "PrivRecKitTests", dependencies: ["PrivRecKit"]),
    ]
)
