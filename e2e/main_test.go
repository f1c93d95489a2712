package e2e

import (
	"os"
	"testing"

	"github.com/pyairtable/automation-domain/app"
)

// TestMain lets this test binary serve as the evaluation helper of the stacks its tests start
// (they re-execute it, as the service re-executes its own binary), and as the Temporal server
// process of the fault tests.
func TestMain(m *testing.M) {
	app.RunEvalHelper()
	temporalHelperMain()
	os.Exit(m.Run())
}
