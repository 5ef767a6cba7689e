package controller

import (
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestEvictionProbability(t *testing.T) {
	tests := []struct {
		rate  float64
		tick  time.Duration
		scale float64
		want  float64
	}{
		{0, 5 * time.Second, 1, 0},
		// Real time: one eviction an hour, an hour's tick: 1 - 1/e.
		{1, time.Hour, 1, 1 - 1/math.E},
		// At scale 0.01 five seconds of wall time are 500 s simulated.
		{1, 5 * time.Second, 0.01, 1 - math.Exp(-500.0/3600)},
	}
	for _, tt := range tests {
		if got := evictionProbability(tt.rate, tt.tick, tt.scale); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("evictionProbability(%v, %v, %v) = %v, want %v", tt.rate, tt.tick, tt.scale, got, tt.want)
		}
	}
}

// TestToleratesCordon: a pod that tolerates every NoSchedule taint, as
// konnectivity-agent does, may come back to a cordoned node; others not.
func TestToleratesCordon(t *testing.T) {
	for _, tc := range []struct {
		tolerations []corev1.Toleration
		want        bool
	}{
		{nil, false},
		{[]corev1.Toleration{{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists}}, false},
		{[]corev1.Toleration{{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, true},
		{[]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, true},
		{[]corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists}}, true},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.tolerations}}
		if got := toleratesCordon(pod); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.tolerations, got, tc.want)
		}
	}
}

func TestBatchDrainTimeoutIsPerWave(t *testing.T) {
	for _, c := range []struct {
		nodes int
		want  time.Duration
	}{
		{0, time.Minute},
		{1, time.Minute},
		{parallelNodeOps, time.Minute},
		{parallelNodeOps + 1, 2 * time.Minute},
		{3 * parallelNodeOps, 3 * time.Minute},
	} {
		if got := batchDrainTimeout(c.nodes, time.Minute); got != c.want {
			t.Errorf("batchDrainTimeout(%d, 1m) = %s, want %s", c.nodes, got, c.want)
		}
	}
}
