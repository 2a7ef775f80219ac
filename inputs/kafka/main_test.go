package kafka

import (
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The harness is pipelinetest's, shared by the consumer inputs' tests.
type rig = pipelinetest.InputRig

var errDown = pipelinetest.ErrDown

func startRig(t testing.TB, in pipeline.InputConfig, name string, down bool, set ...func(*pipelinetest.Capture)) *rig {
	t.Helper()
	return pipelinetest.StartInput(t, in, name, down, nil, set...)
}

func startRigLog(t testing.TB, in pipeline.InputConfig, name string, down bool, log *zap.Logger, set ...func(*pipelinetest.Capture)) *rig {
	t.Helper()
	return pipelinetest.StartInput(t, in, name, down, log, set...)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	pipelinetest.WaitFor(t, what, cond)
}
