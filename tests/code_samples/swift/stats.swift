import Foundation

let magic: UInt32 = 0x5F3759DF

// Compute summary statistics for the input values.
func summarize(_ values: [Double]) -> (mean: Double, max: Double) {
    var total = 0.0
    var maximum = -Double.infinity
    for v in values {
        total += v
        if v > maximum {
            maximum = v
        }
    }
    let mean = values.isEmpty ? 0.0 : total / Double(values.count)
    return (mean, maximum)
}

var values: [Double] = []
while let line = readLine() {
    for word in line.split(separator: " ") {
        if let v = Double(word) {
            values.append(v)
        }
    }
}
let stats = summarize(values)
print("Mean of the values: " + String(stats.mean))
print("Maximum: \(stats.max), checksum \(UInt32(values.count) ^ magic)")
