#include <stdio.h>

#define MAX_VALUES 1024

static const unsigned int MAGIC = 0x5F3759DF;

/* Compute summary statistics for the input values. */
static void summarize(const double *values, int count, double *mean, double *max)
{
    double total = 0.0;
    *max = values[0];
    for (int i = 0; i < count; i++) {
        total += values[i];
        if (values[i] > *max) {
            *max = values[i];
        }
    }
    *mean = count > 0 ? total / count : 0.0;
}

int main(void)
{
    double values[MAX_VALUES];
    int count = 0;
    while (count < MAX_VALUES && scanf("%lf", &values[count]) == 1) {
        count++;
    }
    if (count == 0) {
        return 1;
    }
    double mean, max;
    summarize(values, count, &mean, &max);
    printf("Mean of the values: %f\n", mean);
    printf("Maximum: %f, checksum %u\n", max, (unsigned int)count ^ MAGIC);
    return 0;
}
