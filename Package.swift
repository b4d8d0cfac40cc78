// swift-tools-version: 5.9
// PrivRecKit for apps that add this repository by git URL (Xcode: File > Add Package Dependencies…).
// The sources live in ios_sample/PrivRecKit, whose own Package.swift the demo app uses by path; both
// manifests describe the same library and tests, on the same platforms.
import PackageDescription

let package = Package(
    name: "PrivRecKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "PrivRecKit", targets: ["PrivRecKit"]),
    ],
    targets: [
        .target(name: "PrivRecKit", path: "ios_sample/PrivRecKit/Sources/PrivRecKit"),
        .testTarget(
            name: "PrivRecKitTests",
            dependencies: ["PrivRecKit"],
            path: "ios_sample/PrivRecKit/Tests/PrivRecKitTests"
        ),
    ]
)
