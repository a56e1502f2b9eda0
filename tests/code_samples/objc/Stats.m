#import <Foundation/Foundation.h>

static const unsigned int MAGIC = 0x5F3759DF;

// Compute summary statistics for the input values.
@interface Stats : NSObject
+ (double)meanOf:(NSArray<NSNumber *> *)values max:(double *)max;
@end

@implementation Stats
+ (double)meanOf:(NSArray<NSNumber *> *)values max:(double *)max {
    double total = 0.0;
    *max = -INFINITY;
    for (NSNumber *number in values) {
        double v = number.doubleValue;
        total += v;
        if (v > *max) {
            *max = v;
        }
    }
    return values.count > 0 ? total / values.count : 0.0;
}
@end

int main(int argc, const char *argv[]) {
    @autoreleasepool {
        NSMutableArray<NSNumber *> *values = [NSMutableArray array];
        double x;
        while (scanf("%lf", &x) == 1) {
            [values addObject:@(x)];
        }
        double max = 0.0;
        double mean = [Stats meanOf:values max:&max];
        NSLog(@"Mean of the values: %f", mean);
        NSLog(@"Maximum: %f, checksum %lu", max, (unsigned long)values.count ^ MAGIC);
    }
    return 0;
}
