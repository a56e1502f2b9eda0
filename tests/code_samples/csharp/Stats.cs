using System;
using System.Collections.Generic;
using System.Linq;

public static class Stats
{
    const uint Magic = 0x5F3759DF;

    // Compute summary statistics for the input values.
    static (double Mean, double Max) Summarize(List<double> values)
    {
        double total = 0.0;
        double max = double.NegativeInfinity;
        foreach (double v in values)
        {
            total += v;
            if (v > max)
            {
                max = v;
            }
        }
        double mean = values.Count > 0 ? total / values.Count : 0.0;
        return (mean, max);
    }

    public static void Main()
    {
        var values = new List<double>();
        string line;
        while ((line = Console.ReadLine()) != null)
        {
            values.AddRange(line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(double.Parse));
        }
        var stats = Summarize(values);
        Console.WriteLine("Mean of the values: " + stats.Mean);
        Console.WriteLine($"Maximum: {stats.Max}, checksum {(uint)values.Count ^ Magic}");
    }
}
