"""Tests of the documentation: every Python snippet of docs/ and README.md runs."""
