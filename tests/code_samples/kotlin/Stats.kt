const val MAGIC = 0x5F3759DF

// Compute summary statistics for the input values.
fun summarize(values: List<Double>): Pair<Double, Double> {
    var total = 0.0
    var max = Double.NEGATIVE_INFINITY
    for (v in values) {
        total += v
        if (v > max) {
            max = v
        }
    }
    val mean = if (values.isEmpty()) 0.0 else total / values.size
    return Pair(mean, max)
}

fun main() {
    val values = generateSequence(::readLine)
        .flatMap { it.split(' ').asSequence() }
        .filter { it.isNotBlank() }
        .map { it.toDouble() }
        .toList()
    val (mean, max) = summarize(values)
    println("Mean of the values: " + mean)
    println("Maximum: $max, checksum ${values.size xor MAGIC}")
}
