# A hash- and regex-heavy, deterministic Perl workload.
#
# tests/programs.rs runs it with and without LD_PRELOAD=libslitter.so and
# requires identical output. Hash order is never printed unsorted, and the
# pseudo-random numbers come from a fixed linear congruential generator.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $seed = 42;
sub rnd {
    $seed = ($seed * 1103515245 + 12345) % 2147483648;
    return $seed;
}

# A big hash of strings.
my %h;
for my $i (1 .. 150_000) {
    my $key = sprintf("key%06d_%x", $i, rnd());
    $h{$key} = "v" . ($i * 3) . ("x" x ($i % 50));
}
my @keys = sort keys %h;
print "keys ", scalar(@keys), " ", md5_hex(join(",", @keys[0 .. 999])), "\n";

# Regex substitutions and captures over a large string.
my $text = join(" ", map { $h{$_} } @keys);
(my $tagged = $text) =~ s/v(\d+)/<$1>/g;
my @sevens = ($tagged =~ /<(\d*7)>/g);
my $count = () = $tagged =~ /x{10,}/g;
print "regex ", length($tagged), " ", scalar(@sevens), " $count ", md5_hex($tagged), "\n";

# Split, join, nested structures.
my %groups;
for my $key (@keys) {
    push @{ $groups{ substr($key, -1) } }, $key;
}
for my $group (sort keys %groups) {
    printf "group %s %d %s\n", $group, scalar @{ $groups{$group} },
        md5_hex(join("|", reverse @{ $groups{$group} }));
}
my @words = split /_/, join("_", @keys[0 .. 49_999]);
my %seen;
$seen{ lc $_ }++ for @words;
print "words ", scalar(@words), " ", scalar(keys %seen), "\n";

# Deletions, growth of strings, sprintf-heavy output.
delete @h{ grep { /[02468]_/ } @keys };
my $report = "";
for my $key (sort keys %h) {
    $report .= sprintf("%-20s %8d\n", $key, length $h{$key});
}
print "left ", scalar(keys %h), " ", length($report), " ", md5_hex($report), "\n";

# Sorting with a custom comparator, transliteration, uc/lc.
my @sorted = sort { length($a) <=> length($b) or $b cmp $a } values %h;
(my $shouted = join("", @sorted[0 .. 9_999])) =~ tr/a-z/A-Z/;
print "sorted ", scalar(@sorted), " ", md5_hex($shouted), "\n";
print "hash_regex: ok\n";
