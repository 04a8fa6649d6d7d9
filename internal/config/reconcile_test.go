package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReconcileDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), "offboard.yaml")
	require.NoError(t, err)
	r := cfg.Reconcile
	assert.Equal(t, 24*time.Hour, r.Interval())
	assert.Equal(t, 7*24*time.Hour, r.Due())
	assert.Equal(t, OrphansReport, r.OrphanPolicy())
	assert.False(t, r.IsService("svc-build"))
}

func TestReconcileSection(t *testing.T) {
	cfg, err := Parse([]byte(minimal+"reconcile:\n  every: 6h\n  orphans: contain\n  roster: {kind: csv, path: /hr/roster.csv}\n  servicePrefixes: [SVC-]\n"), "offboard.yaml")
	require.NoError(t, err)
	assert.Equal(t, 6*time.Hour, cfg.Reconcile.Interval())
	assert.Equal(t, OrphansContain, cfg.Reconcile.OrphanPolicy())
	assert.True(t, cfg.Reconcile.IsService("svc-build"))

	// An account serviceOwners names is a service account whatever its name.
	cfg, err = Parse([]byte(minimal+"reconcile:\n  serviceOwners: {Administrator: it-ops@example.test}\n"), "offboard.yaml")
	require.NoError(t, err)
	assert.True(t, cfg.Reconcile.IsService("administrator"))
	assert.Equal(t, "it-ops@example.test", cfg.Reconcile.ServiceOwner("ADMINISTRATOR"))
	assert.False(t, cfg.Reconcile.IsService("ada"))

	for name, section := range map[string]string{
		"unknown policy":            "reconcile: {orphans: delete}\n",
		"csv needs path":            "reconcile: {roster: {kind: csv}}\n",
		"unknown roster":            "reconcile: {roster: {kind: successfactors}}\n",
		"workday needs credentials": "reconcile: {roster: {kind: workday, url: \"https://wd2-impl-services1.workday.com/ccx/service/acme/Human_Resources/v42.0\"}}\n",
		"workday password inline":   "reconcile: {roster: {kind: workday, url: \"https://h/x\", username: ISU, password: hunter2}}\n",
		"workday sandbox password":  "reconcile: {roster: {kind: workday, url: \"https://h/x\", username: ISU, password: \"sandbox:x\"}}\n",
		"unknown field":             "reconcile: {orphan: report}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+section), "offboard.yaml")
			require.Error(t, err)
		})
	}
}
