import java.util.ArrayList;
import java.util.List;
import java.util.Scanner;

public class Stats {
    static final int MAGIC = 0x5F3759DF;

    // Compute summary statistics for the input values.
    static double[] summarize(List<Double> values) {
        double total = 0.0;
        double max = Double.NEGATIVE_INFINITY;
        for (double v : values) {
            total += v;
            if (v > max) {
                max = v;
            }
        }
        double mean = values.isEmpty() ? 0.0 : total / values.size();
        return new double[] {mean, max};
    }

    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        List<Double> values = new ArrayList<>();
        while (in.hasNextDouble()) {
            values.add(in.nextDouble());
        }
        double[] stats = summarize(values);
        System.out.println("Mean of the values: " + stats[0]);
        System.out.println("Maximum: " + stats[1] + ", checksum " + (values.size() ^ MAGIC));
    }
}
