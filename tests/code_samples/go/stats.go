package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

const magic = 0x5F3759DF

// Compute summary statistics for the input values.
func summarize(values []float64) (mean, max float64) {
	total := 0.0
	for i, v := range values {
		total += v
		if i == 0 || v > max {
			max = v
		}
	}
	if len(values) > 0 {
		mean = total / float64(len(values))
	}
	return mean, max
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Split(bufio.ScanWords)
	var values []float64
	for scanner.Scan() {
		if v, err := strconv.ParseFloat(scanner.Text(), 64); err == nil {
			values = append(values, v)
		}
	}
	mean, max := summarize(values)
	fmt.Println("Mean of the values: " + strconv.FormatFloat(mean, 'f', -1, 64))
	fmt.Printf("Maximum: %v, checksum %d\n", max, len(values)^magic)
}
