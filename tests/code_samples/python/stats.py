import sys

MAGIC = 0x5F3759DF


def summarize(values):
    # Compute summary statistics for the input values.
    total = 0.0
    maximum = float("-inf")
    for v in values:
        total += v
        if v > maximum:
            maximum = v
    mean = total / len(values) if values else 0.0
    return mean, maximum


def main():
    values = [float(word) for line in sys.stdin for word in line.split()]
    mean, maximum = summarize(values)
    print("Mean of the values: " + str(mean))
    print(f"Maximum: {maximum}, checksum {len(values) ^ MAGIC}")


if __name__ == "__main__":
    main()
