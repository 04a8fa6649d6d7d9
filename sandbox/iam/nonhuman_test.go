package iam_test

import (
	"bytes"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offboard/offboard/sandbox/demo"
	iamsim "github.com/offboard/offboard/sandbox/iam"
)

func TestNonHumanSeed(t *testing.T) {
	sim, _, c := start(t)
	ctx := t.Context()
	out, err := c.ListUsers(ctx, &iam.ListUsersInput{PathPrefix: aws.String("/service/")})
	require.NoError(t, err)
	require.Len(t, out.Users, 1)
	assert.Equal(t, demo.ServiceUserName, aws.ToString(out.Users[0].UserName))
	assert.Equal(t, "arn:aws:iam::123456789012:user/service/deploy-bot", aws.ToString(out.Users[0].Arn))
	_, err = c.ListUsers(ctx, &iam.ListUsersInput{PathPrefix: aws.String("service")})
	assert.Equal(t, "ValidationError", apiCode(err))

	bot := mustUser(t, sim, demo.ServiceUserName)
	assert.Equal(t, demo.ServiceOwner(people).Email, bot.Tags[demo.OwnerTag])
	assert.Len(t, bot.AccessKeys, 1)
	assert.False(t, bot.LoginProfile)
	bg := mustUser(t, sim, demo.BreakGlassAWS)
	assert.True(t, bg.LoginProfile)
	assert.NotEmpty(t, bg.PasswordSHA256)
}

func TestCreateAccessKeyAndLimit(t *testing.T) {
	sim, _, c := start(t)
	ctx, name := t.Context(), aws.String(demo.ServiceUserName)
	out, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: name})
	require.NoError(t, err)
	id, secret := aws.ToString(out.AccessKey.AccessKeyId), aws.ToString(out.AccessKey.SecretAccessKey)
	assert.Regexp(t, `^AKIA[A-Z2-7]{16}$`, id)
	assert.Len(t, secret, 40)
	got, ok := sim.AccessKeySecret(demo.ServiceUserName, id)
	require.True(t, ok)
	assert.Equal(t, secret, got)
	keys := mustUser(t, sim, demo.ServiceUserName).AccessKeys
	require.Len(t, keys, 2)
	assert.Equal(t, iamsim.Credential{ID: id, Status: "Active"}, keys[1])

	_, err = c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: name})
	assert.Equal(t, "LimitExceeded", apiCode(err), "two keys per user, as AWS")
	assert.Len(t, mustUser(t, sim, demo.ServiceUserName).AccessKeys, 2)
	_, err = c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("nobody")})
	assert.Equal(t, "NoSuchEntity", apiCode(err))

	// The secret survives a save and load, as the key does.
	var saved bytes.Buffer
	require.NoError(t, sim.SaveState(&saved))
	other := iamsim.New(iamsim.Options{People: people})
	require.NoError(t, other.LoadState(bytes.NewReader(saved.Bytes())))
	got, ok = other.AccessKeySecret(demo.ServiceUserName, id)
	assert.True(t, ok)
	assert.Equal(t, secret, got)
}

func TestUpdateLoginProfile(t *testing.T) {
	sim, _, c := start(t)
	ctx, name := t.Context(), aws.String(demo.BreakGlassAWS)
	before := mustUser(t, sim, demo.BreakGlassAWS).PasswordSHA256
	_, err := c.UpdateLoginProfile(ctx, &iam.UpdateLoginProfileInput{UserName: name, Password: aws.String("short")})
	assert.Equal(t, "PasswordPolicyViolation", apiCode(err))
	assert.Equal(t, before, mustUser(t, sim, demo.BreakGlassAWS).PasswordSHA256)
	_, err = c.UpdateLoginProfile(ctx, &iam.UpdateLoginProfileInput{UserName: name, Password: aws.String("a-long-enough-Passw0rd!")})
	require.NoError(t, err)
	after := mustUser(t, sim, demo.BreakGlassAWS).PasswordSHA256
	assert.NotEqual(t, before, after)
	assert.Equal(t, "UpdateLoginProfile", sim.Transitions(demo.BreakGlassAWS)[0].Action)
	_, err = c.UpdateLoginProfile(ctx, &iam.UpdateLoginProfileInput{UserName: aws.String(demo.ServiceUserName), Password: aws.String("a-long-enough-Passw0rd!")})
	assert.Equal(t, "NoSuchEntity", apiCode(err), "no console password to change")

	var saved bytes.Buffer
	require.NoError(t, sim.SaveState(&saved))
	other := iamsim.New(iamsim.Options{People: people})
	require.NoError(t, other.LoadState(bytes.NewReader(saved.Bytes())))
	assert.Equal(t, after, mustUser(t, other, demo.BreakGlassAWS).PasswordSHA256)
}
