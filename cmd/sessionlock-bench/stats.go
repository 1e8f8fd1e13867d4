package main

import (
	"slices"
	"time"
)

// quantile returns the q-quantile (0 <= q <= 1) of xs by the nearest-rank
// method; xs need not be sorted. It returns 0 for no samples.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

// summarise describes xs as a sample with median, p90 and maximum.
func summarise(what, unit string, xs []float64) sample {
	return sample{What: what, Unit: unit, Median: quantile(xs, 0.5), P90: quantile(xs, 0.9),
		Max: slices.Max(append([]float64{0}, xs...)), Samples: len(xs)}
}

// timeOps runs op n times, timing each call, and appends the times in
// nanoseconds to into.
func timeOps(n int, op func() error, into []float64) ([]float64, error) {
	for range n {
		start := time.Now()
		if err := op(); err != nil {
			return into, err
		}
		into = append(into, float64(time.Since(start).Nanoseconds()))
	}
	return into, nil
}

// alternate measures ours and base in rounds of n timed operations each,
// after one untimed round of each for warm-up. The order flips every round,
// so that both sides see the same load on a noisy machine.
func alternate(rounds, n int, ours, base func() error) (o, b []float64, err error) {
	if _, err := timeOps(n, ours, nil); err != nil {
		return nil, nil, err
	}
	if _, err := timeOps(n, base, nil); err != nil {
		return nil, nil, err
	}
	for r := range rounds {
		if r%2 == 0 {
			if o, err = timeOps(n, ours, o); err == nil {
				b, err = timeOps(n, base, b)
			}
		} else {
			if b, err = timeOps(n, base, b); err == nil {
				o, err = timeOps(n, ours, o)
			}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return o, b, nil
}
